// harness.mjs -- real servers for the web tests, the way
// tests/integration/harness.c starts them: redis-server, mosquitto (an MQTT
// listener, and a WebSocket listener whose http_dir is the built page) and
// build/chat-bridge, on free 127.0.0.1 ports, in a temporary directory
// removed afterwards (CB_KEEP=1 keeps it). Every process is stopped by its
// PID; a test that dies leaves none behind (see 'exit' below).
import { spawn, execFile } from 'node:child_process';
import { mkdtempSync, writeFileSync, rmSync, openSync, closeSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

const running = new Set();          // child processes not yet stopped

process.on('exit', () => {
    for (const child of running) {
        try { process.kill(child.pid, 'SIGKILL'); } catch { /* gone */ }
    }
});

export const sleep = ms => new Promise(resolve => setTimeout(resolve, ms));

// Poll fn until it returns a truthy value; throw after timeoutMs.
export async function waitFor(fn, what, timeoutMs = 10000, everyMs = 50) {
    const end = Date.now() + timeoutMs;
    let last;
    for (;;) {
        last = await fn();
        if (last) return last;
        if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
        await sleep(everyMs);
    }
}

export function freePort() {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.once('error', reject);
        srv.listen(0, '127.0.0.1', () => {
            const { port } = srv.address();
            srv.close(() => resolve(port));
        });
    });
}

function connects(port) {
    return new Promise(resolve => {
        const s = net.connect(port, '127.0.0.1');
        s.once('connect', () => { s.destroy(); resolve(true); });
        s.once('error', () => resolve(false));
    });
}

export function waitPort(port, what, timeoutMs = 10000) {
    return waitFor(() => connects(port), `${what} on port ${port}`, timeoutMs);
}

// Start argv with stdout and stderr appended to logfile.
function start(argv, logfile) {
    const fd = openSync(logfile, 'a');
    const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    child.exited = new Promise(resolve => child.once('exit', (code, signal) => {
        running.delete(child);
        resolve(signal ? -1 : code);
    }));
    child.once('error', err => { console.error(`${argv[0]}: ${err.message}`); });
    running.add(child);
    return child;
}

// SIGTERM, then SIGKILL after timeoutMs; the exit code (-1 for a signal).
export async function stop(child, timeoutMs = 10000) {
    if (!child || !running.has(child)) return child ? child.exited : -1;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const code = await child.exited;
    clearTimeout(timer);
    return code;
}

export function run(cmd, args, timeoutMs = 10000) {
    return new Promise(resolve => {
        execFile(cmd, args, { timeout: timeoutMs }, (err, stdout, stderr) =>
            resolve({ code: err ? (err.code ?? -1) : 0, stdout, stderr }));
    });
}

export class Servers {
    constructor(www, bridge) {
        this.www = path.resolve(www);
        this.bridgeBin = path.resolve(bridge);
        this.dir = mkdtempSync(path.join(os.tmpdir(), 'chat-bridge-web.'));
    }

    async start() {
        this.redisPort = await freePort();
        this.mqttPort = await freePort();
        this.wsPort = await freePort();
        this.redis = start(['redis-server', '--port', String(this.redisPort), '--bind', '127.0.0.1',
            '--dir', this.dir, '--save', '', '--appendonly', 'no'], this.log('redis'));
        // As root mosquitto would drop to its own user, which cannot write
        // its database here: stay root then. Persistence keeps the bridge's
        // session across the broker restart of the tests.
        writeFileSync(path.join(this.dir, 'mosquitto.conf'), [
            `listener ${this.mqttPort} 127.0.0.1`,
            `listener ${this.wsPort} 127.0.0.1`,
            'protocol websockets',
            `http_dir ${this.www}`,
            'allow_anonymous true',
            'persistence true',
            `persistence_location ${this.dir}/`,
            'autosave_interval 1',
            'max_queued_messages 100000',
            ...(process.getuid() === 0 ? ['user root'] : []),
            ''].join('\n'));
        this.startBroker();
        // status_interval: after the broker restart the retained status is
        // the bridge's will (online: false) until the bridge's next status
        // document; 2 s instead of 30 s keeps the page's indicator close.
        writeFileSync(path.join(this.dir, 'bridge.yaml'), [
            'mqtt:',
            `  uri: tcp://127.0.0.1:${this.mqttPort}`,
            '  status_interval: 2',
            'redis:',
            `  port: ${this.redisPort}`,
            'journal:',
            `  dir: ${this.dir}/journal`,
            ''].join('\n'));
        await waitPort(this.redisPort, 'redis-server');
        await this.waitBroker();
        await this.startBridge();
    }

    // The bridge on bridge.yaml; resolves once it answers a request.
    async startBridge() {
        this.bridge = start([this.bridgeBin, '-c', path.join(this.dir, 'bridge.yaml')], this.log('bridge'));
        await waitFor(async () => (await this.rr('chat/ready/history', '{}', 2)).code === 0,
            'the bridge to answer', 30000, 10);
    }

    log(name) { return path.join(this.dir, `${name}.log`); }

    startBroker() {
        this.broker = start(['mosquitto', '-c', path.join(this.dir, 'mosquitto.conf')], this.log('mosquitto'));
    }

    async waitBroker() {
        await waitPort(this.mqttPort, 'mosquitto');
        await waitPort(this.wsPort, 'mosquitto (WebSocket)');
    }

    async stopBroker() { await stop(this.broker); }

    async restartBroker() {
        await this.stopBroker();
        this.startBroker();
        await this.waitBroker();
    }

    url(query, port = this.wsPort) { return `http://127.0.0.1:${port}/?${query}`; }

    // One message published as a terminal user would, QoS 1.
    async pub(topic, message) {
        const r = await run('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(this.mqttPort),
            '-q', '1', '-t', topic, '-m', message]);
        if (r.code !== 0) throw new Error(`mosquitto_pub ${topic}: ${r.stderr}`);
    }

    // Each line one message, in order, from one mosquitto_pub (-l).
    pubLines(topic, lines) {
        return new Promise((resolve, reject) => {
            const child = spawn('mosquitto_pub', ['-h', '127.0.0.1', '-p', String(this.mqttPort),
                '-q', '1', '-t', topic, '-l'], { stdio: ['pipe', 'ignore', 'inherit'] });
            const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
            child.once('error', reject);
            child.once('exit', code => {
                clearTimeout(timer);
                if (code === 0) resolve();
                else reject(new Error(`mosquitto_pub -l ${topic}: exit ${code}`));
            });
            child.stdin.end(lines.map(l => l + '\n').join(''));
        });
    }

    // One request as mosquitto_rr makes it (MQTT 5 response topic).
    rr(topic, message, waitS = 5) {
        return run('mosquitto_rr', ['-h', '127.0.0.1', '-p', String(this.mqttPort), '-t', topic,
            '-e', `reply/harness/${process.pid}`, '-m', message, '-W', String(waitS)], (waitS + 5) * 1000);
    }

    async redisCli(...args) {
        const r = await run('redis-cli', ['-h', '127.0.0.1', '-p', String(this.redisPort), ...args]);
        return r.stdout.trim();
    }

    // SIGTERM the bridge; its exit status (finish() returns it again).
    stopBridge() { return stop(this.bridge, 30000); }

    // Stop everything; 0 when the bridge exited cleanly.
    async finish() {
        const rc = await stop(this.bridge, 30000);
        await stop(this.broker);
        await stop(this.redis);
        if (rc !== 0) {
            console.error(`bridge exited with ${rc}; its log:\n${readFileSync(this.log('bridge'), 'utf8')}`);
        }
        if (rc === 0 && !process.env.CB_KEEP) rmSync(this.dir, { recursive: true, force: true });
        else console.error(`kept ${this.dir}`);
        return rc;
    }
}

// A TCP relay to port that can hold: while held, it cuts every connection
// and refuses new ones at once, as a network that went away would.
export class Relay {
    constructor(port) {
        this.target = port;
        this.held = false;
        this.sockets = new Set();
        this.server = net.createServer(client => {
            if (this.held) { client.destroy(); return; }
            const upstream = net.connect(this.target, '127.0.0.1');
            for (const [a, b] of [[client, upstream], [upstream, client]]) {
                this.sockets.add(a);
                a.on('error', () => b.destroy());
                a.on('close', () => { this.sockets.delete(a); b.destroy(); });
                a.pipe(b);
            }
        });
    }

    listen() {
        return new Promise(resolve => this.server.listen(0, '127.0.0.1', () => {
            this.port = this.server.address().port;
            resolve(this.port);
        }));
    }

    hold() {
        this.held = true;
        for (const s of this.sockets) s.destroy();
    }

    release() { this.held = false; }

    close() {
        this.hold();
        return new Promise(resolve => this.server.close(resolve));
    }
}
