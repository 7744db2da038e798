/** The allreduce benchmark runs end to end (tiny sizes) and yields well-formed rows. */
import { expect } from 'chai';
import { benchAllreduce } from '../../bench/allreduce';

describe('bench/allreduce (smoke)', function () {
  this.timeout(180_000);
  it('measures raw TCP, allReduce on 2 and 3 child-process workers, and the training step', async () => {
    const rows = await benchAllreduce({ sizes: [1000, 100_003], workers: [2, 3], tcpBytes: 32 << 20, reps: 2, trainSteps: 3 });
    expect(rows[0].measure).to.match(/raw loopback TCP/);
    expect(rows[0]['busbw MB/s']).to.be.a('number').above(0);
    const ar = rows.filter((r) => r.measure === 'allReduce sum');
    expect(ar.map((r) => `${r.workers}/${r.floats}`)).to.deep.equal(['2/1000', '2/100003', '3/1000', '3/100003']);
    for (const r of ar) expect(r['algbw MB/s']).to.be.a('number').above(0);
    expect(rows.some((r) => /training step, allreduce mode/.test(String(r.measure)))).to.equal(true);
    expect(rows.some((r) => /training step, ps mode/.test(String(r.measure)))).to.equal(true);
  });
});
