/** The paging parameters of Synapse's admin lists: an offset, a page size, a direction. */
import { Type } from 'typebox';

export const Offset = Type.Optional(Type.Integer({ minimum: 0 }));
export const Limit = Type.Optional(Type.Integer({ minimum: 0, maximum: 1000 }));
export const Direction = Type.Optional(Type.Union([Type.Literal('f'), Type.Literal('b')]));
