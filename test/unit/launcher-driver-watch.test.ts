/**
 * When the launcher (on the Spark driver) gives up on the Node driver: after 20 s of polls that
 * cannot reach it (refused: its process is gone), but only after 180 s of polls it accepts and
 * does not answer (its process is alive, its event loop busy with the user's synchronous work).
 * The run option driverSilenceTimeout (the job's driverSilenceSec) sets the second limit. The
 * failures are real ones, from polling a closed port and a listener that never answers.
 */
import { expect } from 'chai';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';

const SPARK_JOBS = path.resolve(__dirname, '../../../spark-jobs');

interface Verdicts {
  silentIsSilent: boolean;
  refusedIsSilent: boolean;
  silentAfter25: string | null;
  refusedAfter25: string | null;
  refusedAfter15: string | null;
  silentAfter185: string | null;
  customSilentAfter25: string | null;
  customSilentAfter31: string | null;
}

function verdicts(): Verdicts {
  const script = `
import json, socket, sys
sys.path.insert(0, ${JSON.stringify(SPARK_JOBS)})
import tfos_launcher as L

quiet = socket.socket()
quiet.bind(("127.0.0.1", 0))
quiet.listen(8)  # accepts connections (the kernel does), never answers
gone = socket.socket()
gone.bind(("127.0.0.1", 0))
gone_port = gone.getsockname()[1]
gone.close()  # nobody listens there

def poll(port):
    try:
        L.Control("http://127.0.0.1:%d" % port, "s" * 32)._request("GET", "/v1/launcher/command?wait=2", timeout=0.5)
    except Exception as err:
        return err
    raise AssertionError("the poll succeeded")

silent, refused = poll(quiet.getsockname()[1]), poll(gone_port)
now = [1000.0]
watch = L.DriverWatch(clock=lambda: now[0])
out = {"silentIsSilent": L.DriverWatch.silent(silent), "refusedIsSilent": L.DriverWatch.silent(refused)}
now[0] += 25
out["silentAfter25"] = watch.stop_reason(silent)
out["refusedAfter25"] = watch.stop_reason(refused)
watch.heard()
now[0] += 15
out["refusedAfter15"] = watch.stop_reason(refused)
now[0] += 170
out["silentAfter185"] = watch.stop_reason(silent)
short = L.DriverWatch(clock=lambda: now[0], silent_sec=30)
now[0] += 25
out["customSilentAfter25"] = short.stop_reason(silent)
now[0] += 6
out["customSilentAfter31"] = short.stop_reason(silent)
print(json.dumps(out))
`;
  return JSON.parse(execFileSync('python3', ['-c', script]).toString()) as Verdicts;
}

describe('the launcher’s verdict on a driver that stops answering', () => {
  let v: Verdicts;
  before(() => (v = verdicts()));

  it('tells a driver that accepts and does not answer (busy) from one that refuses (gone)', () => {
    expect(v.silentIsSilent).to.equal(true);
    expect(v.refusedIsSilent).to.equal(false);
  });

  it('stops the cluster 20 s after the driver became unreachable, not before', () => {
    expect(v.refusedAfter15).to.equal(null);
    expect(v.refusedAfter25).to.match(/^driver unreachable for 25 s \(.*refused/i);
  });

  it('waits for a busy driver for 180 s, then stops saying its process is stuck', () => {
    expect(v.silentAfter25).to.equal(null);
    expect(v.silentAfter185).to.match(/^driver connected but silent for 185 s \(.*\): its process is stuck$/);
  });

  it('waits as long as the job’s driverSilenceSec says instead, when the run sets it', () => {
    expect(v.customSilentAfter25).to.equal(null);
    expect(v.customSilentAfter31).to.match(/^driver connected but silent for 31 s /);
  });
});
