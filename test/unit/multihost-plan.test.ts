/**
 * The pure parts of running beyond one machine: how the stack network is planned (names that fit
 * Linux's 15-character interface limit, a /24 that no existing route touches, no default route
 * anywhere) and which host a route's target names (the address the driver must face).
 */
import { expect } from 'chai';
import { isLoopbackHost, targetHost } from '../../lib/driver/addresses';
import { overlaps, planNetwork } from '../../lib/stack/netns';

describe('stack network plan (tfos stack up --hosts N)', () => {
  it('names hosts a, b, c… with one namespace, one bridge port and one address each', async () => {
    const plan = await planNetwork('/some/tfos/home/stack', 3, []);
    expect(plan.hosts.map((h) => h.name)).to.deep.equal(['a', 'b', 'c']);
    const base = plan.subnet.replace(/\.0\/24$/, '');
    expect(plan.gateway).to.equal(`${base}.1`);
    expect(plan.hosts.map((h) => h.address)).to.deep.equal([`${base}.11`, `${base}.12`, `${base}.13`]);
    expect(plan.subnet).to.match(/^10\.\d+\.\d+\.0\/24$/);
    for (const name of [plan.bridge, ...plan.hosts.map((h) => h.hostLink)]) expect(name.length, name).to.be.at.most(15);
    expect(new Set(plan.hosts.map((h) => h.netns)).size).to.equal(3);
  });

  it('is the same for the same stack directory and differs between stack directories', async () => {
    const a1 = await planNetwork('/home/one/stack', 3, []);
    const a2 = await planNetwork('/home/one/stack', 3, []);
    const b = await planNetwork('/home/two/stack', 3, []);
    expect(a1).to.deep.equal(a2);
    expect(b.id).not.to.equal(a1.id);
  });

  it('never takes a /24 that an existing route overlaps', async () => {
    const first = await planNetwork('/x/stack', 3, []);
    const again = await planNetwork('/x/stack', 3, [first.subnet]);
    expect(again.subnet).not.to.equal(first.subnet);
    const wide = await planNetwork('/x/stack', 3, [`${first.subnet.split('.').slice(0, 2).join('.')}.0.0/16`]);
    expect(wide.subnet.split('.').slice(0, 2)).not.to.deep.equal(first.subnet.split('.').slice(0, 2));
  });

  it('overlap: a /24 against wider, narrower and default routes', () => {
    expect(overlaps('10.200.5.0/24', '10.200.5.0')).to.equal(true);
    expect(overlaps('10.200.0.0/16', '10.200.5.0')).to.equal(true);
    expect(overlaps('10.200.5.77', '10.200.5.0')).to.equal(true);
    expect(overlaps('10.200.6.0/24', '10.200.5.0')).to.equal(false);
    // The default route is not a subnet that the hosts' addresses would collide with.
    expect(overlaps('0.0.0.0/0', '10.200.5.0')).to.equal(false);
  });

  it('refuses fewer than two hosts', async () => {
    const err = await planNetwork('/x/stack', 1, []).catch((e: Error) => e);
    expect((err as Error).message).to.match(/2 to 26 hosts, got 1/);
  });
});

describe('the host a route faces', () => {
  it('reads the host of standalone (also HA lists), k8s and Livy targets; none for yarn', () => {
    expect(targetHost('spark://10.1.2.3:7077')).to.equal('10.1.2.3');
    expect(targetHost('spark://m1:7077,m2:7077')).to.equal('m1');
    expect(targetHost('k8s://https://api.example:6443')).to.equal('api.example');
    expect(targetHost('http://10.9.9.9:8998')).to.equal('10.9.9.9');
    expect(targetHost('local[4]')).to.equal('local');
    expect(targetHost('yarn')).to.equal(undefined);
  });

  it('knows loopback names', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '::1', '[::1]']) expect(isLoopbackHost(h), h).to.equal(true);
    for (const h of ['10.0.0.1', 'vm', '::2']) expect(isLoopbackHost(h), h).to.equal(false);
  });
});
