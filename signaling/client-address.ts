/**
 * Which address a connection comes from, and under which key its per-address limits count.
 *
 * Without `trustProxy` the address is the TCP peer's and forwarding headers are ignored: anyone
 * can write them, so reading them would let a client choose its own address. With it, the address
 * is read from the one header the proxies write (`X-Forwarded-For` or `Forwarded`), walking from
 * the peer towards the client for as long as the hop is trusted; an entry that is not an IP
 * address stops the walk there. An IPv6 client counts under its /64, which one host or one home
 * usually holds whole; an IPv4 client under its address. Pure functions, no sockets.
 */

import { BlockList, isIP } from 'node:net'

/** Which hops may tell us who they forward for: the nearest `hops`, or the listed `proxies`. */
export type ProxyTrust =
  | { readonly hops: number }
  | { readonly proxies: BlockList }

export type ProxyHeader = 'x-forwarded-for' | 'forwarded'

const IPV4_MAPPED = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/

const isPort = (text: string): boolean => /^\d{1,5}$/.test(text) && Number(text) <= 65535

/** IPv6 in the WHATWG URL serialization (lowercase, `::` for the longest zero run, hex only). */
const canonicalIpv6 = (text: string): string | null => {
  try {
    return new URL(`http://[${text}]/`).hostname.slice(1, -1)
  } catch {
    return null
  }
}

/** `::ffff:a.b.c.d` (however written) is an IPv4 client seen through a dual-stack socket. */
const unmapIpv4 = (ipv6: string): string | null => {
  const mapped = IPV4_MAPPED.exec(ipv6)
  if (mapped === null) return null
  const high = Number.parseInt(mapped[1] ?? '', 16)
  const low = Number.parseInt(mapped[2] ?? '', 16)
  return `${high >> 8}.${high & 255}.${low >> 8}.${low & 255}`
}

/**
 * An IP address in canonical form, or null when `text` is not one. Accepts what sockets and
 * proxies write: `1.2.3.4`, `1.2.3.4:5678`, `::1`, `[::1]`, `[::1]:5678`, a zone (`fe80::1%eth0`,
 * dropped) and IPv4-mapped IPv6 (returned as IPv4).
 */
export const parseAddress = (text: string): string | null => {
  let host = text.trim()
  if (host.startsWith('[')) {
    const end = host.indexOf(']')
    const rest = host.slice(end + 1)
    if (end === -1 || !(rest === '' || (rest.startsWith(':') && isPort(rest.slice(1))))) return null
    host = host.slice(1, end)
  } else if (/^[\d.]+:\d+$/.test(host)) {
    const colon = host.indexOf(':')
    if (!isPort(host.slice(colon + 1))) return null
    host = host.slice(0, colon)
  }
  const zone = host.indexOf('%')
  if (zone !== -1) host = host.slice(0, zone)
  const family = isIP(host)
  if (family === 4) return host
  if (family !== 6) return null
  const ipv6 = canonicalIpv6(host)
  if (ipv6 === null) return null
  return unmapIpv4(ipv6) ?? ipv6
}

export const familyOf = (address: string): 'ipv4' | 'ipv6' => address.includes(':') ? 'ipv6' : 'ipv4'

/** The key per-address limits count under: the IPv4 address, or the IPv6 address's /64. */
export const addressGroup = (address: string): string => {
  if (familyOf(address) === 'ipv4') return address
  const [head = '', tail] = address.split('::')
  const left = head === '' ? [] : head.split(':')
  const right = tail === undefined || tail === '' ? [] : tail.split(':')
  const groups = tail === undefined ? left : [...left, ...new Array<string>(8 - left.length - right.length).fill('0'), ...right]
  const network = `${groups.slice(0, 4).join(':')}::`
  return `${canonicalIpv6(network) ?? network}/64`
}

/** Splits on `separator` outside double quotes (RFC 7239 values may be quoted strings). */
const splitOutsideQuotes = (text: string, separator: string): string[] => {
  const parts: string[] = []
  let quoted = false
  let start = 0
  for (let i = 0; i < text.length; i++) {
    const char = text[i]
    if (char === '\\' && quoted) i++
    else if (char === '"') quoted = !quoted
    else if (char === separator && !quoted) {
      parts.push(text.slice(start, i))
      start = i + 1
    }
  }
  parts.push(text.slice(start))
  return parts
}

const unquote = (value: string): string =>
  value.length >= 2 && value.startsWith('"') && value.endsWith('"') ? value.slice(1, -1).replace(/\\(.)/g, '$1') : value

/** The `for=` node of each element of a `Forwarded` header, client first; '' where there is none. */
const forwardedNodes = (header: string): string[] =>
  splitOutsideQuotes(header, ',').map((element) => {
    for (const pair of splitOutsideQuotes(element, ';')) {
      const equals = pair.indexOf('=')
      if (equals !== -1 && pair.slice(0, equals).trim().toLowerCase() === 'for') return unquote(pair.slice(equals + 1).trim())
    }
    return ''
  })

/**
 * The entries of a forwarding header, client first, not yet parsed: whoever sent the request
 * wrote most of them, and only the few that trusted hops vouch for are ever read as addresses.
 * Node joins repeated headers with ', '.
 */
export const forwardedChain = (value: string | string[] | undefined, header: ProxyHeader): string[] => {
  if (value === undefined) return []
  const text = Array.isArray(value) ? value.join(', ') : value
  if (text.trim() === '') return []
  return header === 'forwarded' ? forwardedNodes(text) : text.split(',')
}

const isTrusted = (address: string, hop: number, trust: ProxyTrust): boolean =>
  'hops' in trust ? hop <= trust.hops : trust.proxies.check(address, familyOf(address))

/**
 * The client's address: `peer` itself unless `trust` says the peer is a proxy, in which case the
 * forwarded `chain` is walked from its end (the hop nearest to us) for as long as each hop is
 * trusted. An entry that is not an address (`unknown`, an obfuscated `_name`) ends the walk.
 */
export const clientAddress = (peer: string, chain: readonly string[], trust: ProxyTrust | null): string => {
  if (trust === null) return peer
  let address = peer
  for (let i = chain.length - 1, hop = 1; i >= 0 && isTrusted(address, hop, trust); i--, hop++) {
    const next = parseAddress(chain[i] ?? '')
    if (next === null) break
    address = next
  }
  return address
}

/**
 * Builds the trust of a `trustProxy` option: a hop count, or addresses and CIDR ranges
 * (`10.0.0.0/8`, `2001:db8::/32`). Null for `false` or 0; throws a plain Error naming a bad entry.
 */
export const toProxyTrust = (option: false | number | readonly string[]): ProxyTrust | null => {
  if (option === false || option === 0) return null
  if (typeof option === 'number') return { hops: option }
  const proxies = new BlockList()
  for (const entry of option) {
    const [text = '', prefix, extra] = entry.split('/')
    // A bare IP literal: no brackets, no port.
    const address = isIP(text) === 0 ? null : parseAddress(text)
    if (address === null || extra !== undefined) throw new Error(`'${entry}' is not an address or a CIDR range`)
    const family = familyOf(address)
    if (prefix === undefined) {
      proxies.addAddress(address, family)
      continue
    }
    const bits = Number(prefix)
    if (!/^\d{1,3}$/.test(prefix) || bits > (family === 'ipv4' ? 32 : 128)) throw new Error(`'${entry}' has a bad prefix length`)
    proxies.addSubnet(address, bits, family)
  }
  return { proxies }
}
