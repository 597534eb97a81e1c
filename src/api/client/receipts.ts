import { Type } from 'typebox';
import { requesterOf } from '../../http/request-context.js';
import { RECEIPT_TYPES } from '../../services/receipts.js';
import { RoomParams, roomIdParam } from './params.js';
import type { RoutePlugin } from './plugin.js';

const EventIdParam = Type.String({ minLength: 1, maxLength: 255 });
const ReceiptParams = Type.Object({
  roomId: RoomParams.properties.roomId,
  receiptType: Type.Union(RECEIPT_TYPES.map((t) => Type.Literal(t))),
  eventId: EventIdParam,
});

// https://spec.matrix.org/v1.19/client-server-api/#receipts
// https://spec.matrix.org/v1.19/client-server-api/#fully-read-markers
export const receiptRoutes: RoutePlugin = async (app, { services }) => {
  app.post(
    '/rooms/:roomId/receipt/:receiptType/:eventId',
    {
      config: { auth: 'required' },
      schema: {
        params: ReceiptParams,
        // thread_id is checked by the service, to answer M_INVALID_PARAM as the spec says.
        // No body at all is an unthreaded receipt (older clients send none).
        body: Type.Optional(Type.Object({ thread_id: Type.Optional(Type.Unknown()) })),
      },
    },
    async (request) => {
      await services.receipts.send(
        requesterOf(request),
        roomIdParam(request.params.roomId),
        request.params.receiptType,
        request.params.eventId,
        request.body?.thread_id,
      );
      return {};
    },
  );

  app.post(
    '/rooms/:roomId/read_markers',
    {
      config: { auth: 'required' },
      schema: {
        params: RoomParams,
        body: Type.Optional(
          Type.Object({
            'm.fully_read': Type.Optional(EventIdParam),
            'm.read': Type.Optional(EventIdParam),
            'm.read.private': Type.Optional(EventIdParam),
          }),
        ),
      },
    },
    async (request) => {
      await services.receipts.setReadMarkers(
        requesterOf(request),
        roomIdParam(request.params.roomId),
        {
          fullyRead: request.body?.['m.fully_read'],
          read: request.body?.['m.read'],
          readPrivate: request.body?.['m.read.private'],
        },
      );
      return {};
    },
  );
};
