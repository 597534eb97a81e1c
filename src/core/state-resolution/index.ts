/** State resolution (v2 and v2.1) and the auth chain helpers it is built on. */
export {
  MissingEventsError,
  authChain,
  authChainDifference,
  authGraphLookup,
  collectAuthChain,
  type EventLookup,
  type ResolvableEvent,
} from './auth-chain.js';
export {
  conflictedStateSubgraph,
  isPowerEvent,
  iterativeAuthChecks,
  mainlineSort,
  partitionStates,
  resolveState,
  reverseTopologicalPowerSort,
  type ResolveOptions,
  type StateMap,
} from './resolve.js';
