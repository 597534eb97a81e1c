/**
 * Pagination tokens for room timelines: `s<position>` names a point in the global event
 * stream, just after the event at that position. /messages, /context (and later /sync) use it.
 */
export const streamToken = (position: number): string => `s${position}`;

/** The stream position of a token, or null when it is not one of ours. */
export function parseStreamToken(token: string): number | null {
  const match = /^s(\d{1,15})$/.exec(token);
  return match ? Number(match[1]) : null;
}
