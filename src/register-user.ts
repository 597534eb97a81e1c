/** The client side of shared-secret registration, used by `commons register-user`. */
import { createHmac } from 'node:crypto';

export interface RegisterUserRequest {
  username: string;
  password: string;
  admin: boolean;
}

/** fetch, with a failure to connect told as what it is and where. */
async function reach(endpoint: URL, init?: RequestInit): Promise<Response> {
  try {
    return await fetch(endpoint, init);
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    const why = cause?.code ?? cause?.message ?? (err as Error).message;
    throw new Error(
      `could not reach the server at ${endpoint.origin} (${why}): is it running there? ` +
        '(the address comes from listen.host and listen.port; --url names another)',
      { cause: err },
    );
  }
}

/** The body as JSON, or an error saying what answered instead. */
async function jsonOf(response: Response, endpoint: URL): Promise<Record<string, unknown>> {
  const text = await response.text();
  try {
    const body: unknown = JSON.parse(text);
    if (body !== null && typeof body === 'object') return body as Record<string, unknown>;
  } catch {
    // told below
  }
  throw new Error(
    `${endpoint.href} answered HTTP ${response.status} with no JSON: is a Commons (or Synapse) server listening there?`,
  );
}

export async function registerUserWithSharedSecret(
  baseUrl: string,
  sharedSecret: string,
  request: RegisterUserRequest,
): Promise<{ user_id: string }> {
  const endpoint = new URL('/_synapse/admin/v1/register', baseUrl);
  const nonceResponse = await reach(endpoint);
  const nonceBody = (await jsonOf(nonceResponse, endpoint)) as { nonce?: string; error?: string };
  if (!nonceResponse.ok || !nonceBody.nonce)
    throw new Error(nonceBody.error ?? `HTTP ${nonceResponse.status}`);
  const mac = createHmac('sha1', sharedSecret)
    .update(
      `${nonceBody.nonce}\x00${request.username}\x00${request.password}\x00${request.admin ? 'admin' : 'notadmin'}`,
    )
    .digest('hex');
  const response = await reach(endpoint, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({
      nonce: nonceBody.nonce,
      username: request.username,
      password: request.password,
      admin: request.admin,
      mac,
    }),
  });
  const body = (await jsonOf(response, endpoint)) as {
    user_id?: string;
    error?: string;
    errcode?: string;
  };
  if (!response.ok || !body.user_id)
    throw new Error(`${body.errcode ?? response.status}: ${body.error ?? 'registration failed'}`);
  return { user_id: body.user_id };
}
