/**
 * The Origin allow-list: which web pages may open a WebSocket to the server. A browser sends the
 * page's origin with every WebSocket upgrade and no script can change it, so this is what keeps
 * pages on other sites from using the server. A client that is not a browser sends no Origin, or
 * any it likes: such upgrades pass, because refusing them would stop honest Node peers and nobody
 * else. Keeping clients out is the access token's job; this check keeps out other sites' pages.
 */

/** `https://app.example.com` (scheme, host, optional port) in the form browsers send, or null. */
export const normalizeOrigin = (text: string): string | null => {
  let url: URL
  try {
    url = new URL(text)
  } catch {
    return null
  }
  const bare = url.pathname === '/' && url.search === '' && url.hash === '' && url.username === '' && url.password === ''
  if ((url.protocol !== 'https:' && url.protocol !== 'http:') || !bare || /^[a-z]+:\/\/[^/]*\/./i.test(text)) return null
  return url.origin
}

/** True when an upgrade with this `Origin` header may proceed; `allowed` null lets every origin in. */
export const isOriginAllowed = (allowed: ReadonlySet<string> | null, origin: string | undefined): boolean =>
  allowed === null || origin === undefined || allowed.has(origin.toLowerCase())
