import t from 'tap'
import { limitIdentity } from '../../src/net.js'

t.test('IPv4 and IPv4-mapped IPv6 (dotted or hex) are one identity', async t => {
  t.equal(limitIdentity('198.51.100.7'), '198.51.100.7')
  t.equal(limitIdentity('::ffff:198.51.100.7'), '198.51.100.7')
  t.equal(limitIdentity('::FFFF:c633:6407'), '198.51.100.7')
  t.equal(limitIdentity('0:0:0:0:0:ffff:c633:6407'), '198.51.100.7')
})

t.test('IPv6 is counted by its /64, whatever the spelling', async t => {
  const net = '2001:db8:1:2::'
  for (const ip of ['2001:db8:1:2::1', '2001:DB8:1:2:ffff:ffff:ffff:ffff', '2001:0db8:0001:0002:0:0:0:0', '2001:db8:1:2::1%eth0', '2001:db8:1:2:0:0:1.2.3.4']) {
    t.equal(limitIdentity(ip), net, ip)
  }
  t.not(limitIdentity('2001:db8:1:3::1'), net, 'the next /64 is another client')
  t.equal(limitIdentity('::1'), '0:0:0:0::')
  t.equal(limitIdentity('fe80::'), 'fe80:0:0:0::')
  t.equal(limitIdentity('1:2:3:4::'), '1:2:3:4::', ':: at the end')
})

t.test('anything unparsable is its own identity, lower-cased', async t => {
  for (const ip of ['1::2::3', '::g', '1:2:3:4:5:6:7:8:9', '1:2:3:4:5:6:7', '::1.2.3', '::1.2.3.256', '12345::', '1:2:3:4:5:6:7::8']) {
    t.equal(limitIdentity(ip), ip.toLowerCase(), ip)
  }
  t.equal(limitIdentity('ABCD::Z'), 'abcd::z')
})
