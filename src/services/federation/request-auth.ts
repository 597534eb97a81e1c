/**
 * Checks the `X-Matrix` authorization of an inbound federation request: a well-formed header,
 * a destination that is us, a key of the origin that is known and valid now, and its signature
 * over the method, URI, origin, destination and body. Anything else is 401 `M_UNAUTHORIZED`.
 * https://spec.matrix.org/v1.19/server-server-api/#request-authentication
 */
import { MatrixError } from '../../core/errors.js';
import { isValidServerName } from '../../core/identifiers.js';
import { parseXMatrixHeader, verifyXMatrix } from '../../core/x-matrix.js';
import type { ServiceContext } from '../context.js';
import type { ServerKeyService } from './keys.js';

export interface InboundRequest {
  method: string;
  /** Path and query as received. */
  uri: string;
  authorization: string | undefined;
  /** The parsed JSON body, undefined when there is none. */
  content: unknown;
}

const unauthorized = (message: string): MatrixError =>
  new MatrixError(401, 'M_UNAUTHORIZED', message);

export function createRequestAuthenticator(ctx: ServiceContext, keys: ServerKeyService) {
  const { serverName } = ctx.settings;
  /** Resolves to the origin server of an authentic request; throws 401 otherwise. */
  return async function authenticate(request: InboundRequest): Promise<string> {
    if (request.authorization === undefined)
      throw unauthorized('Missing X-Matrix Authorization header');
    const auth = parseXMatrixHeader(request.authorization);
    if (!auth) throw unauthorized('Malformed X-Matrix Authorization header');
    if (!isValidServerName(auth.origin)) throw unauthorized('Origin is not a server name');
    if (auth.origin === serverName) throw unauthorized('Requests from ourselves are refused');
    if (auth.destination !== null && auth.destination !== serverName)
      throw unauthorized(`Destination is not ${serverName}`);
    const publicKey = await keys.publicKeyFor(auth.origin, auth.key, ctx.now());
    if (!publicKey) throw unauthorized(`No valid key ${auth.key} of ${auth.origin} is known`);
    const signed = verifyXMatrix(
      auth,
      {
        method: request.method,
        uri: request.uri,
        destination: serverName,
        ...(request.content !== undefined ? { content: request.content } : {}),
      },
      publicKey,
    );
    if (!signed) throw unauthorized('Invalid signature');
    return auth.origin;
  };
}

export type RequestAuthenticator = ReturnType<typeof createRequestAuthenticator>;
