import { describe, expect, it } from 'vitest'
import { addressGroup, clientAddress, forwardedChain, parseAddress, toProxyTrust } from '../signaling/client-address.js'

describe('parseAddress', () => {
  it.each([
    ['1.2.3.4', '1.2.3.4'],
    [' 1.2.3.4 ', '1.2.3.4'],
    ['1.2.3.4:5678', '1.2.3.4'],
    ['::1', '::1'],
    ['[::1]', '::1'],
    ['[2001:db8::1]:443', '2001:db8::1'],
    ['2001:DB8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['fe80::1%eth0', 'fe80::1'],
    ['::ffff:1.2.3.4', '1.2.3.4'],
    ['::FFFF:0102:0304', '1.2.3.4'],
    ['[::ffff:127.0.0.2]:80', '127.0.0.2']
  ])('reads %j as %j', (text, address) => {
    expect(parseAddress(text)).toBe(address)
  })

  it.each(['', 'unknown', '_hidden', 'example.com', '1.2.3', '01.2.3.4', '1.2.3.4.5', '[::1', '[::1]x', '::1:80:', '1.2.3.4:99999'])('refuses %j', (text) => {
    expect(parseAddress(text)).toBeNull()
  })
})

describe('addressGroup', () => {
  it('keeps an IPv4 address, and groups IPv6 by /64', () => {
    expect(addressGroup('127.0.0.2')).toBe('127.0.0.2')
    expect(addressGroup('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64')
    expect(addressGroup('2001:db8:1:2:ffff::')).toBe('2001:db8:1:2::/64')
    expect(addressGroup('2001:db8::1')).toBe('2001:db8::/64')
    expect(addressGroup('::1')).toBe('::/64')
    expect(addressGroup('fe80::1')).toBe('fe80::/64')
  })

  it('puts two hosts of one /64 together and hosts of two /64s apart', () => {
    const group = (text: string): string => addressGroup(parseAddress(text)!)
    expect(group('2001:db8:aa:bb::1')).toBe(group('2001:db8:aa:bb:ffff:ffff:ffff:ffff'))
    expect(group('2001:db8:aa:bb::1')).not.toBe(group('2001:db8:aa:bc::1'))
  })
})

describe('forwardedChain', () => {
  const parsed = (chain: string[]): Array<string | null> => chain.map(parseAddress)

  it('lists X-Forwarded-For entries client first, repeated headers joined', () => {
    expect(parsed(forwardedChain('203.0.113.7, 10.0.0.1', 'x-forwarded-for'))).toEqual(['203.0.113.7', '10.0.0.1'])
    expect(parsed(forwardedChain(['203.0.113.7', '10.0.0.1, [2001:db8::1]:80'], 'x-forwarded-for'))).toEqual(['203.0.113.7', '10.0.0.1', '2001:db8::1'])
    expect(parsed(forwardedChain('evil, 10.0.0.1', 'x-forwarded-for'))).toEqual([null, '10.0.0.1'])
    expect(forwardedChain(undefined, 'x-forwarded-for')).toEqual([])
    expect(forwardedChain(' ', 'x-forwarded-for')).toEqual([])
  })

  it('reads the for= node of each Forwarded element (RFC 7239), quoted or not', () => {
    const header = 'for=192.0.2.60;proto=http;by=203.0.113.43, For="[2001:db8:cafe::17]:4711", for=unknown, by=10.0.0.1, for="_gazonk"'
    expect(parsed(forwardedChain(header, 'forwarded'))).toEqual(['192.0.2.60', '2001:db8:cafe::17', null, null, null])
    expect(parsed(forwardedChain('for="1.2.3.4;x", for=5.6.7.8', 'forwarded'))).toEqual([null, '5.6.7.8'])
  })
})

describe('clientAddress', () => {
  const proxies = toProxyTrust(['127.0.0.4', '10.0.0.0/8'])

  it('parses only the entries it walks over', () => {
    const chain = [...new Array<string>(5_000).fill('2001:db8::1'), '203.0.113.7']
    expect(clientAddress('127.0.0.4', chain, toProxyTrust(1))).toBe('203.0.113.7')
    expect(clientAddress('127.0.0.5', chain, proxies)).toBe('127.0.0.5')
  })

  it('is the peer when no proxy is trusted, whatever the headers say', () => {
    expect(clientAddress('127.0.0.2', ['6.6.6.6'], null)).toBe('127.0.0.2')
  })

  it('with a hop count, takes that many hops from the end of the chain', () => {
    expect(clientAddress('127.0.0.4', ['6.6.6.6', '203.0.113.7'], toProxyTrust(1))).toBe('203.0.113.7')
    expect(clientAddress('127.0.0.4', ['6.6.6.6', '203.0.113.7', '10.0.0.1'], toProxyTrust(2))).toBe('203.0.113.7')
    expect(clientAddress('127.0.0.4', [], toProxyTrust(1))).toBe('127.0.0.4')
  })

  it('with a list, walks back over trusted proxies only, and stops at an entry that is not an address', () => {
    expect(clientAddress('127.0.0.4', ['6.6.6.6', '203.0.113.7', '10.1.2.3'], proxies)).toBe('203.0.113.7')
    expect(clientAddress('127.0.0.5', ['6.6.6.6'], proxies)).toBe('127.0.0.5')
    expect(clientAddress('127.0.0.4', ['10.1.1.1', '10.2.2.2'], proxies)).toBe('10.1.1.1')
    expect(clientAddress('127.0.0.4', ['203.0.113.7', 'unknown'], proxies)).toBe('127.0.0.4')
  })
})

describe('toProxyTrust', () => {
  it('is null for false and 0', () => {
    expect(toProxyTrust(false)).toBeNull()
    expect(toProxyTrust(0)).toBeNull()
  })

  it.each([['proxy.example.com'], ['10.0.0.0/33'], ['2001:db8::/129'], ['10.0.0.1:80'], ['10.0.0.0/8/1'], ['10.0.0.0/x']])('refuses %j', (entry) => {
    expect(() => toProxyTrust([entry])).toThrow(entry)
  })

  it('accepts addresses and CIDR ranges of both families', () => {
    const trust = toProxyTrust(['::1', '2001:db8::/32', '192.168.0.0/16'])
    expect(clientAddress('::1', ['1.1.1.1'], trust)).toBe('1.1.1.1')
    expect(clientAddress('2001:db8:ffff::1', ['1.1.1.1'], trust)).toBe('1.1.1.1')
    expect(clientAddress('192.168.7.7', ['1.1.1.1'], trust)).toBe('1.1.1.1')
    expect(clientAddress('192.169.0.1', ['1.1.1.1'], trust)).toBe('192.169.0.1')
  })
})
