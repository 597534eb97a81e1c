import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import type { ToDeviceMessages } from '../../services/to-device.js';
import { EventContent } from './params.js';
import type { RoutePlugin } from './plugin.js';

const SendParams = Type.Object({
  eventType: Type.String({ minLength: 1, maxLength: 255 }),
  txnId: Type.String({ minLength: 1, maxLength: 255 }),
});

// https://spec.matrix.org/v1.19/client-server-api/#send-to-device-messaging
export const toDeviceRoutes: RoutePlugin = async (app, { services }) => {
  app.put(
    '/sendToDevice/:eventType/:txnId',
    {
      config: { auth: 'required' },
      schema: {
        params: SendParams,
        body: Type.Object({
          messages: Type.Record(
            Type.String({ maxLength: 255 }),
            Type.Record(Type.String({ minLength: 1, maxLength: 255 }), EventContent),
          ),
        }),
      },
    },
    async (request) => {
      await services.toDevice.send(
        requesterOf(request),
        request.params.eventType,
        request.params.txnId,
        request.body.messages as ToDeviceMessages,
      );
      return {};
    },
  );
};
