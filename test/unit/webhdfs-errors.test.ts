/**
 * The WebHDFS client against stub servers: the two-step data protocol (body sent once, to the
 * DataNode only), RemoteException parsing, timeouts and unreachable hosts. No Hadoop needed.
 */
import { expect } from 'chai';
import * as http from 'node:http';
import * as net from 'node:net';
import { AddressInfo } from 'node:net';
import { WebHdfsClient, WebHdfsError } from '../../lib/io/webhdfs';
import { freePort } from '../../lib/stack/ports';
import { rejection } from '../support/rejection';

interface Seen {
  method: string;
  url: URL;
  bytes: number;
}

/** A stub server; `handle` answers each request after its body has been read (unless it answers first). */
async function stub(
  handle: (req: http.IncomingMessage, res: http.ServerResponse, seen: Seen) => void | 'early',
): Promise<{ url: string; port: number; seen: Seen[]; close: () => Promise<void> }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    const s: Seen = { method: req.method ?? '', url: new URL(req.url ?? '/', 'http://stub'), bytes: 0 };
    seen.push(s);
    req.on('data', (d: Buffer) => (s.bytes += d.length));
    if (handle(req, res, s) === 'early') return;
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    seen,
    close: () =>
      new Promise<void>((r) => {
        server.closeAllConnections();
        server.close(() => r());
      }),
  };
}

function remote(res: http.ServerResponse, status: number, exception: string, message: string): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify({ RemoteException: { exception, javaClassName: `org.apache.hadoop.${exception}`, message } }));
}

async function* chunks(n: number, size: number): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < n; i++) yield Buffer.alloc(size, i);
}

describe('WebHDFS client (stub servers)', () => {
  const closers: Array<() => Promise<void>> = [];
  afterEach(async () => {
    while (closers.length) await closers.pop()!();
  });

  /** NameNode stub redirecting data ops to a DataNode stub that answers like Hadoop's (100 Continue, then 201). */
  async function cluster(opts: {
    noredirectJson: boolean;
    datanode?: (req: http.IncomingMessage, res: http.ServerResponse, seen: Seen) => void | 'early';
  }) {
    const dn = await stub(
      opts.datanode ??
        ((req, res) => {
          req.on('end', () => {
            res.writeContinue();
            res.writeHead(201, { location: 'hdfs://nn/x', 'content-length': 0, connection: 'close' });
            res.end();
          });
        }),
    );
    const nn = await stub((req, res, s) => {
      req.on('end', () => {
        const target = `${dn.url}${s.url.pathname}${s.url.search}&dn=1`;
        if (opts.noredirectJson && s.url.searchParams.get('noredirect') === 'true') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify({ Location: target }));
        } else {
          res.writeHead(307, { location: target });
          res.end();
        }
      });
    });
    closers.push(nn.close, dn.close);
    return { nn, dn, client: new WebHdfsClient({ url: nn.url, user: 'alice', timeoutMs: 2000 }) };
  }

  for (const noredirectJson of [true, false]) {
    it(`CREATE sends a streamed body once, to the DataNode only (NameNode answers ${noredirectJson ? 'JSON Location' : '307'})`, async () => {
      const { nn, dn, client } = await cluster({ noredirectJson });
      await client.create('/d/f.bin', chunks(8, 64 * 1024), { overwrite: true, blockSize: 1 << 20 });
      expect(nn.seen).to.have.length(1);
      expect(nn.seen[0].method).to.equal('PUT');
      expect(nn.seen[0].bytes).to.equal(0);
      expect(nn.seen[0].url.searchParams.get('op')).to.equal('CREATE');
      expect(nn.seen[0].url.searchParams.get('user.name')).to.equal('alice');
      expect(nn.seen[0].url.searchParams.get('overwrite')).to.equal('true');
      expect(nn.seen[0].url.searchParams.get('blocksize')).to.equal(String(1 << 20));
      expect(dn.seen).to.have.length(1);
      expect(dn.seen[0].bytes).to.equal(8 * 64 * 1024);
    });
  }

  it('APPEND posts a Buffer body to the DataNode', async () => {
    const { nn, dn, client } = await cluster({ noredirectJson: true });
    await client.append('/d/f.bin', Buffer.from('more'));
    expect(nn.seen[0].method).to.equal('POST');
    expect(nn.seen[0].url.searchParams.get('op')).to.equal('APPEND');
    expect(dn.seen[0].method).to.equal('POST');
    expect(dn.seen[0].bytes).to.equal(4);
  });

  it('a DataNode that redirects again is an error; the body is not re-sent', async () => {
    const { dn, client } = await cluster({
      noredirectJson: true,
      datanode: (req, res) => {
        req.resume();
        req.on('end', () => {
          res.writeHead(307, { location: 'http://127.0.0.1:1/elsewhere' });
          res.end();
        });
      },
    });
    const err = await rejection(client.create('/d/f.bin', chunks(4, 1024)));
    expect(err).to.be.instanceOf(WebHdfsError);
    expect(err.message).to.contain('refusing to re-send');
    expect(dn.seen).to.have.length(1);
  });

  it('a DataNode error answered before the body is read ends the upload with its RemoteException', async () => {
    const { client } = await cluster({
      noredirectJson: true,
      datanode: (_req, res) => {
        // The whole answer, but the connection stays open and the body keeps being read (the
        // stub counts it): the client must act on the answer, not on a reset connection.
        const body = JSON.stringify({
          RemoteException: {
            exception: 'AccessControlException',
            javaClassName: 'org.apache.hadoop.AccessControlException',
            message: 'Permission denied: user=alice',
          },
        });
        res.writeHead(403, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
        res.write(body);
        return 'early';
      },
    });
    // An endless source: the upload must stop once the DataNode has answered.
    async function* endless(): AsyncGenerator<Uint8Array> {
      for (;;) yield Buffer.alloc(64 * 1024);
    }
    const err = (await rejection(client.create('/d/f.bin', endless()))) as WebHdfsError;
    expect(err).to.be.instanceOf(WebHdfsError);
    expect(err.status).to.equal(403);
    expect(err.exception).to.equal('AccessControlException');
    expect(err.message).to.contain('Permission denied');
    expect(err.op).to.equal('CREATE');
  });

  it("a failing body source rejects with the source's own error", async () => {
    const { client } = await cluster({ noredirectJson: true });
    async function* broken(): AsyncGenerator<Uint8Array> {
      yield Buffer.from('a');
      throw new Error('disk on fire');
    }
    const err = await rejection(client.create('/d/f.bin', broken()));
    expect(err.message).to.equal('disk on fire');
  });

  it('parses RemoteException into the error fields and message', async () => {
    const nn = await stub((_req, res) => remote(res, 404, 'FileNotFoundException', 'File /x/y does not exist.'));
    closers.push(nn.close);
    const err = (await rejection(new WebHdfsClient({ url: nn.url, user: 'u' }).status('/x/y'))) as WebHdfsError;
    expect(err).to.be.instanceOf(WebHdfsError);
    expect(err.status).to.equal(404);
    expect(err.op).to.equal('GETFILESTATUS');
    expect(err.path).to.equal('/x/y');
    expect(err.exception).to.equal('FileNotFoundException');
    expect(err.javaClassName).to.equal('org.apache.hadoop.FileNotFoundException');
    expect(err.remoteMessage).to.equal('File /x/y does not exist.');
    expect(err.message).to.contain('GETFILESTATUS').and.contain('/x/y').and.contain(`127.0.0.1:${nn.port}`).and.contain('does not exist');
    expect(await new WebHdfsClient({ url: nn.url, user: 'u' }).exists('/x/y')).to.equal(false);
  });

  it('a non-JSON error answer keeps the status and the start of the body', async () => {
    const nn = await stub((_req, res) => {
      res.writeHead(502, { 'content-type': 'text/html' });
      res.end('<html>Bad gateway from the proxy</html>');
    });
    closers.push(nn.close);
    const err = (await rejection(new WebHdfsClient({ url: nn.url }).list('/'))) as WebHdfsError;
    expect(err.status).to.equal(502);
    expect(err.exception).to.equal(undefined);
    expect(err.message).to.contain('Bad gateway from the proxy');
  });

  it('paths are encoded per segment; relative paths are refused', async () => {
    const nn = await stub((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ boolean: true }));
    });
    closers.push(nn.close);
    const client = new WebHdfsClient({ url: `${nn.url}/webhdfs/v1/`, user: 'u' });
    expect(await client.mkdirs('/a dir/ünï?#')).to.equal(true);
    expect(nn.seen[0].url.pathname).to.equal('/webhdfs/v1/a%20dir/%C3%BCn%C3%AF%3F%23');
    expect(await client.rename('hdfs://nn:8020/a', 'hdfs://nn:8020/b')).to.equal(true);
    expect(nn.seen[1].url.pathname).to.equal('/webhdfs/v1/a');
    expect(nn.seen[1].url.searchParams.get('destination')).to.equal('/b');
    expect(await rejection(client.status('relative/path'))).to.be.instanceOf(TypeError);
  });

  it('a NameNode that never answers times out naming host:port', async function () {
    this.timeout(10_000);
    const sockets: net.Socket[] = [];
    const silent = net.createServer((s) => sockets.push(s));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const port = (silent.address() as AddressInfo).port;
    closers.push(
      () =>
        new Promise<void>((r) => {
          for (const s of sockets) s.destroy();
          silent.close(() => r());
        }),
    );
    // The client's 300 ms deadline, not this test's 10 s, must end it.
    const err = (await rejection(new WebHdfsClient({ url: `http://127.0.0.1:${port}`, timeoutMs: 300 }).list('/'))) as WebHdfsError;
    expect(err).to.be.instanceOf(WebHdfsError);
    expect(err.exception).to.equal('ETIMEDOUT');
    expect(err.message).to.contain(`127.0.0.1:${port}`);
  });

  it('a DataNode that stalls mid-read fails the stream with a timeout', async function () {
    this.timeout(10_000);
    const dn = await stub((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 1000 });
      res.write(Buffer.alloc(100));
      return 'early'; // ...and never the rest
    });
    const nn = await stub((_req, res, s) => {
      res.writeHead(307, { location: `${dn.url}${s.url.pathname}${s.url.search}` });
      res.end();
    });
    closers.push(nn.close, dn.close);
    const stream = await new WebHdfsClient({ url: nn.url, timeoutMs: 300 }).open('/f');
    let got = 0;
    const err = (await rejection(
      (async () => {
        for await (const c of stream) got += (c as Buffer).length;
      })(),
    )) as WebHdfsError;
    expect(got).to.equal(100);
    expect(err).to.be.instanceOf(WebHdfsError);
    expect(err.exception).to.equal('ETIMEDOUT');
    expect(err.op).to.equal('OPEN');
    expect(err.message).to.contain(`127.0.0.1:${dn.port}`);
  });

  it('a refused connection is reported quickly with host:port', async () => {
    const port = await freePort();
    const err = (await rejection(new WebHdfsClient({ url: `http://127.0.0.1:${port}` }).readAll('/f'))) as WebHdfsError;
    expect(err).to.be.instanceOf(WebHdfsError);
    expect(err.exception).to.equal('ECONNREFUSED');
    expect(err.status).to.equal(0);
    expect(err.message).to.contain(`127.0.0.1:${port}`).and.contain('OPEN').and.contain('/f');
  });
});
