/** The client side of shared-secret registration, used by `commons register-user`. */
import { createHmac } from 'node:crypto';

export interface RegisterUserRequest {
  username: string;
  password: string;
  admin: boolean;
}

export async function registerUserWithSharedSecret(
  baseUrl: string,
  sharedSecret: string,
  request: RegisterUserRequest,
): Promise<{ user_id: string }> {
  const endpoint = new URL('/_synapse/admin/v1/register', baseUrl);
  const nonceResponse = await fetch(endpoint);
  const nonceBody = (await nonceResponse.json()) as { nonce?: string; error?: string };
  if (!nonceResponse.ok || !nonceBody.nonce)
    throw new Error(nonceBody.error ?? `HTTP ${nonceResponse.status}`);
  const mac = createHmac('sha1', sharedSecret)
    .update(
      `${nonceBody.nonce}\x00${request.username}\x00${request.password}\x00${request.admin ? 'admin' : 'notadmin'}`,
    )
    .digest('hex');
  const response = await fetch(endpoint, {
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
  const body = (await response.json()) as { user_id?: string; error?: string; errcode?: string };
  if (!response.ok || !body.user_id)
    throw new Error(`${body.errcode ?? response.status}: ${body.error ?? 'registration failed'}`);
  return { user_id: body.user_id };
}
