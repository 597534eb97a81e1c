import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import {
  ColumnText,
  MAX_AVATAR_URL_LENGTH,
  MAX_DISPLAYNAME_LENGTH,
  userIdParam,
} from './params.js';
import type { RoutePlugin } from './plugin.js';

const UserParams = Type.Object({ userId: Type.String({ minLength: 1 }) });
const MXC_URI = '^mxc://[A-Za-z0-9.\\-:\\[\\]]+/[A-Za-z0-9_\\-]+$';

// https://spec.matrix.org/v1.19/client-server-api/#profiles
export const profileRoutes: RoutePlugin = async (app, { services }) => {
  app.get(
    '/profile/:userId',
    { config: { rateLimit: 'query' }, schema: { params: UserParams } },
    async (request) => {
      const profile = await services.profiles.get(userIdParam(request.params.userId));
      return {
        ...(profile.displayname !== null ? { displayname: profile.displayname } : {}),
        ...(profile.avatarUrl !== null ? { avatar_url: profile.avatarUrl } : {}),
      };
    },
  );

  app.get(
    '/profile/:userId/displayname',
    { config: { rateLimit: 'query' }, schema: { params: UserParams } },
    async (request) => {
      const profile = await services.profiles.get(userIdParam(request.params.userId));
      return profile.displayname !== null ? { displayname: profile.displayname } : {};
    },
  );

  app.get(
    '/profile/:userId/avatar_url',
    { config: { rateLimit: 'query' }, schema: { params: UserParams } },
    async (request) => {
      const profile = await services.profiles.get(userIdParam(request.params.userId));
      return profile.avatarUrl !== null ? { avatar_url: profile.avatarUrl } : {};
    },
  );

  app.put(
    '/profile/:userId/displayname',
    {
      config: { auth: 'required' },
      schema: {
        params: UserParams,
        body: Type.Object({
          displayname: Type.Union([ColumnText({ maxLength: MAX_DISPLAYNAME_LENGTH }), Type.Null()]),
        }),
      },
    },
    async (request) => {
      const displayname = request.body.displayname === '' ? null : request.body.displayname;
      await services.profiles.setDisplayname(
        requesterOf(request),
        userIdParam(request.params.userId),
        displayname,
      );
      return {};
    },
  );

  app.put(
    '/profile/:userId/avatar_url',
    {
      config: { auth: 'required' },
      schema: {
        params: UserParams,
        body: Type.Object({
          avatar_url: Type.Union([
            Type.String({ maxLength: MAX_AVATAR_URL_LENGTH, pattern: MXC_URI }),
            Type.Literal(''),
            Type.Null(),
          ]),
        }),
      },
    },
    async (request) => {
      const avatarUrl = request.body.avatar_url === '' ? null : request.body.avatar_url;
      await services.profiles.setAvatarUrl(
        requesterOf(request),
        userIdParam(request.params.userId),
        avatarUrl,
      );
      return {};
    },
  );
};
