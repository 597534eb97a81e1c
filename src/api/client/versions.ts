import { Type } from 'typebox';
import type { RoutePlugin } from './plugin.js';

/** Spec versions whose endpoints this server implements (see docs/api.md). */
export const SUPPORTED_VERSIONS = [
  'r0.6.1',
  'v1.1',
  'v1.2',
  'v1.3',
  'v1.4',
  'v1.5',
  'v1.6',
  'v1.7',
  'v1.8',
  'v1.9',
  'v1.10',
  'v1.11',
  'v1.12',
  'v1.13',
  'v1.14',
  'v1.15',
  'v1.16',
  'v1.17',
  'v1.18',
  'v1.19',
];

/** Unstable features: MSC2666 under every name clients in use check, MSC2895, MSC4186, MSC3266. */
export function unstableFeatures(options: {
  mutualRoomsMultiUser: boolean;
}): Record<string, boolean> {
  return {
    'uk.half-shot.msc2666': true,
    'uk.half-shot.msc2666.mutual_rooms': true,
    'uk.half-shot.msc2666.query_mutual_rooms': true,
    'uk.half-shot.msc2666.query_mutual_rooms.stable': true,
    'org.commons.msc2666.multi_user': options.mutualRoomsMultiUser,
    'org.matrix.msc2895': true,
    // Simplified sliding sync (MSC4186) and the room summary (MSC3266).
    'org.matrix.simplified_msc3575': true,
    'im.nheko.summary': true,
    // Dehydrated devices (MSC3814).
    'org.matrix.msc3814': true,
  };
}

// https://spec.matrix.org/v1.19/client-server-api/#get_matrixclientversions
// https://spec.matrix.org/v1.19/client-server-api/#getwell-knownmatrixclient
export const versionRoutes: RoutePlugin = async (app, { config }) => {
  const features = unstableFeatures({ mutualRoomsMultiUser: config.mutual_rooms.multi_user });
  app.get(
    '/_matrix/client/versions',
    {
      config: { auth: 'optional' },
      schema: {
        response: {
          200: Type.Object({
            versions: Type.Array(Type.String()),
            unstable_features: Type.Record(Type.String(), Type.Boolean()),
          }),
        },
      },
    },
    async () => ({ versions: SUPPORTED_VERSIONS, unstable_features: features }),
  );

  // Without public_baseurl: the address the client reached us at (the listen address may be
  // 0.0.0.0 or port 0, which no client can use). Behind a proxy, http.trust_proxy makes the
  // scheme and host those the proxy was asked for.
  app.get('/.well-known/matrix/client', async (request) => ({
    'm.homeserver': {
      base_url: config.public_baseurl ?? `${request.protocol}://${request.host}/`,
    },
  }));
};
