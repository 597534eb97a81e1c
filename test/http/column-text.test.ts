import { after, before, it } from 'node:test';
import { forEachDatabase } from '../helpers/databases.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { registerUser } from '../helpers/client.js';
import { expectError } from '../helpers/assertions.js';

// Display names and status messages are kept in columns of their own, where PostgreSQL
// cannot store NUL: both databases refuse it the same way, as a Matrix error.
forEachDatabase('NUL in text kept outside events', (dialect) => {
  let server: TestServer;
  before(async () => {
    server = await startTestServer(dialect);
  });
  after(async () => server.close());

  it('a display name with NUL is 400 M_BAD_JSON', async () => {
    const user = await registerUser(server);
    expectError(
      await server.request('PUT', `/_matrix/client/v3/profile/${user.userId}/displayname`, {
        token: user.accessToken,
        body: { displayname: 'a\u0000b' },
      }),
      400,
      'M_BAD_JSON',
    );
  });

  it('a presence status message with NUL is 400 M_BAD_JSON', async () => {
    const user = await registerUser(server);
    expectError(
      await server.request('PUT', `/_matrix/client/v3/presence/${user.userId}/status`, {
        token: user.accessToken,
        body: { presence: 'online', status_msg: 'a\u0000b' },
      }),
      400,
      'M_BAD_JSON',
    );
  });
});
