/** Helpers that act as a client would (Synapse's RestHelper, in spirit). */
import assert from 'node:assert/strict';
import type { TestServer } from './server.js';

export interface TestUser {
  userId: string;
  accessToken: string;
  deviceId: string;
  password: string;
}

let counter = 0;

/** Registers a user through the m.login.dummy flow and returns its login. */
export async function registerUser(
  server: TestServer,
  localpart?: string,
  password = 'correct horse',
): Promise<TestUser> {
  const username = localpart ?? `user${process.pid}x${++counter}`;
  const first = await server.request<{ session: string }>('POST', '/_matrix/client/v3/register', {
    body: { username, password },
  });
  assert.equal(first.status, 401, JSON.stringify(first.body));
  const second = await server.request<{ user_id: string; access_token: string; device_id: string }>(
    'POST',
    '/_matrix/client/v3/register',
    { body: { username, password, auth: { type: 'm.login.dummy', session: first.body.session } } },
  );
  assert.equal(second.status, 200, JSON.stringify(second.body));
  return {
    userId: second.body.user_id,
    accessToken: second.body.access_token,
    deviceId: second.body.device_id,
    password,
  };
}

/** Logs in with m.login.password (identifier m.id.user) and returns the new session. */
export async function loginUser(
  server: TestServer,
  user: string,
  password: string,
  extra: { device_id?: string; initial_device_display_name?: string } = {},
): Promise<{ userId: string; accessToken: string; deviceId: string }> {
  const response = await server.request<{
    user_id: string;
    access_token: string;
    device_id: string;
  }>('POST', '/_matrix/client/v3/login', {
    body: { type: 'm.login.password', identifier: { type: 'm.id.user', user }, password, ...extra },
  });
  assert.equal(response.status, 200, JSON.stringify(response.body));
  return {
    userId: response.body.user_id,
    accessToken: response.body.access_token,
    deviceId: response.body.device_id,
  };
}

/** The `auth` object of an m.login.password user-interactive auth stage. */
export function passwordAuth(
  userId: string,
  password: string,
  session?: string,
): Record<string, unknown> {
  return {
    type: 'm.login.password',
    identifier: { type: 'm.id.user', user: userId },
    password,
    ...(session !== undefined ? { session } : {}),
  };
}
