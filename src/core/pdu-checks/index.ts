/** The checks performed on receipt of a PDU, one function per step, and all of them in order. */
export {
  MAX_AUTH_EVENTS,
  MAX_PDU_BYTES,
  MAX_PREV_EVENTS,
  MAX_STATE_KEY_BYTES,
  MAX_TYPE_BYTES,
  checkPduFormat,
  type FormatResult,
} from './format.js';
export {
  checkPduSignatures,
  requiredSigningServers,
  verifyThirdPartySigned,
  type ServerVerifyKey,
  type SignatureResult,
  type VerifyKeyLookup,
} from './signatures.js';
export { checkPduContentHash, type ContentHashResult } from './content-hash.js';
export {
  checkAgainstAuthEvents,
  checkAgainstState,
  type AuthEventsResult,
  type KnownAuthEvent,
} from './authorization.js';
export { checkFetchedEvents, type FetchedEvent, type FetchedVerdict } from './fetched.js';
export { checkReceivedPdu, type ReceiptInput, type ReceiptVerdict } from './receive.js';
export { checkJoinAnswer, type JoinAnswer, type JoinAnswerVerdict } from './join-answer.js';
