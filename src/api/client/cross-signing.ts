import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import type { RoutePlugin } from './plugin.js';

const Id = Type.String({ minLength: 1, maxLength: 255 });
const CrossSigningKey = Type.Object({
  user_id: Id,
  usage: Type.Array(Type.String({ maxLength: 64 }), { minItems: 1, maxItems: 8 }),
  keys: Type.Record(Type.String({ maxLength: 255 }), Type.String({ maxLength: 255 })),
  signatures: Type.Optional(
    Type.Record(Type.String(), Type.Record(Type.String(), Type.String({ maxLength: 1024 }))),
  ),
});

// https://spec.matrix.org/v1.19/client-server-api/#cross-signing
export const crossSigningRoutes: RoutePlugin = async (app, { services }) => {
  const { crossSigning } = services;

  // https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3keysdevice_signingupload
  app.post(
    '/keys/device_signing/upload',
    {
      config: { auth: 'required' },
      schema: {
        body: Type.Object({
          master_key: Type.Optional(CrossSigningKey),
          self_signing_key: Type.Optional(CrossSigningKey),
          user_signing_key: Type.Optional(CrossSigningKey),
          auth: Type.Optional(Type.Unknown()),
        }),
      },
    },
    async (request) => {
      const { auth, ...keys } = request.body;
      await crossSigning.uploadSigningKeys(requesterOf(request), keys, auth);
      return {};
    },
  );

  // https://spec.matrix.org/v1.19/client-server-api/#post_matrixclientv3keyssignaturesupload
  app.post(
    '/keys/signatures/upload',
    {
      config: { auth: 'required' },
      schema: {
        body: Type.Record(
          Id,
          Type.Record(Id, Type.Record(Type.String(), Type.Unknown()), { maxProperties: 1000 }),
          { maxProperties: 1000 },
        ),
      },
    },
    async (request) => crossSigning.uploadSignatures(requesterOf(request), request.body),
  );
};
