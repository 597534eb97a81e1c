/** A server admin for tests of the admin API, made through shared-secret registration. */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { uniqueName } from './assertions.js';
import type { TestUser } from './client.js';
import type { TestServer } from './server.js';

/** The registration.shared_secret the server must be started with. */
export const ADMIN_SECRET = 'a shared secret of enough length';
const A1 = '/_synapse/admin/v1';
const SECRET = ADMIN_SECRET;

/** A server admin, made through shared-secret registration. */
export async function registerAdmin(server: TestServer): Promise<TestUser> {
  const path = `${A1}/register`;
  const nonce = await server.request<{ nonce: string }>('GET', path);
  const username = uniqueName('admin');
  const password = 'admin password';
  const mac = createHmac('sha1', SECRET)
    .update([nonce.body.nonce, username, password, 'admin'].join('\x00'), 'utf8')
    .digest('hex');
  const res = await server.request<{ user_id: string; access_token: string; device_id: string }>(
    'POST',
    path,
    { body: { nonce: nonce.body.nonce, username, password, admin: true, mac } },
  );
  assert.equal(res.status, 200, JSON.stringify(res.body));
  return {
    userId: res.body.user_id,
    accessToken: res.body.access_token,
    deviceId: res.body.device_id,
    password,
  };
}
