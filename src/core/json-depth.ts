/**
 * How deeply JSON from a client may nest. Deeper values are refused where they are parsed
 * (every request body, the `filter` query parameters): serialising one — canonical JSON,
 * `JSON.stringify` — recurses once per level and overflows the stack a few thousand levels
 * down, which was a 500. No Matrix event or account data comes near 100 levels (canonical
 * JSON is made for shallow objects); Synapse refuses deep JSON too.
 */
export const MAX_JSON_DEPTH = 100;

/**
 * Whether a parsed JSON value nests objects or arrays more than `max` levels deep (a scalar
 * is depth 0, `{}` and `[]` depth 1). Walks without recursion, so any depth is safe to ask.
 */
export function nestsDeeperThan(value: unknown, max = MAX_JSON_DEPTH): boolean {
  if (typeof value !== 'object' || value === null) return false;
  const stack: [object, number][] = [[value, 1]];
  for (let next = stack.pop(); next !== undefined; next = stack.pop()) {
    const [container, depth] = next;
    if (depth > max) return true;
    const children: unknown[] = Array.isArray(container)
      ? container
      : Object.values(container as Record<string, unknown>);
    for (const child of children) {
      if (typeof child === 'object' && child !== null) stack.push([child, depth + 1]);
    }
  }
  return false;
}
