// Runs the real `target/debug/storefleet serve` against the test cluster for the browser test, the way
// crates/storefleet/tests/support/mod.rs does for the Rust tests: its own --instance (so it sees no
// other test's stores), a temporary SQLite file, the store chart, and cleanup of whatever it created.
import { spawn, execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, openSync, readFileSync, rmSync, existsSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const run = promisify(execFile);

/** KUBECONFIG and STOREFLEET_HELM from the environment, else from target/testcluster/env. */
export function clusterEnv() {
  const env = { KUBECONFIG: process.env.KUBECONFIG, STOREFLEET_HELM: process.env.STOREFLEET_HELM };
  const file = path.join(ROOT, 'target/testcluster/env');
  if ((!env.KUBECONFIG || !env.STOREFLEET_HELM) && existsSync(file)) {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const m = line.match(/^(?:export\s+)?(KUBECONFIG|STOREFLEET_HELM)=['"]?([^'"]*)['"]?\s*$/);
      if (m && !env[m[1]]) env[m[1]] = m[2];
    }
  }
  if (!env.KUBECONFIG || !env.STOREFLEET_HELM) {
    throw new Error('no test cluster: run `scripts/testcluster up` (target/testcluster/env is missing)');
  }
  return env;
}

export async function kubectl(...args) {
  const { stdout } = await run('kubectl', args, { env: { ...process.env, ...clusterEnv() }, maxBuffer: 16 << 20 });
  return stdout;
}

export async function until(what, timeoutMs, probe, intervalMs = 250) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs / 1000}s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

export class Server {
  /** `backups`: a filesystem backup target (a fresh folder) and key, as tests/backups_restore.rs has. */
  constructor({ maxStores, backups = false, pool = null }) {
    this.env = clusterEnv();
    this.binary = process.env.STOREFLEET_BIN ?? path.join(ROOT, 'target/debug/storefleet');
    if (!existsSync(this.binary)) throw new Error(`${this.binary} is missing: run \`cargo build -p storefleet\``);
    this.dir = mkdtempSync(path.join(tmpdir(), 'storefleet-ui-'));
    this.instance = `t-ui-${randomBytes(3).toString('hex')}`;
    this.token = `token-${randomBytes(16).toString('hex')}`;
    this.logPath = path.join(this.dir, 'server.log');
    this.listen = '127.0.0.1:0';
    this.maxStores = maxStores;
    // `woocommerce/small=1`: the warm pool (docs/pool.md).
    this.pool = pool;
    this.child = null;
    if (backups) {
      this.backupDir = path.join(this.dir, 'backups');
      this.backupKeyFile = path.join(this.dir, 'backup-key');
      writeFileSync(this.backupKeyFile, `${randomBytes(32).toString('hex')}\n`, { mode: 0o600 });
    }
  }

  args() {
    return [
      'serve', '--listen', this.listen, '--install-crd', '--instance', this.instance,
      '--database-url', `sqlite://${path.join(this.dir, 'storefleet.db')}`,
      '--chart', path.join(ROOT, 'charts/store'), '--helm', this.env.STOREFLEET_HELM,
      '--admin-token', this.token, '--log-format', 'json', '--provision-timeout', '10m',
      '--max-stores', String(this.maxStores),
      ...(this.pool ? ['--pool', this.pool] : []),
      // The agent's image is never pulled: the kubelet stand-in ends Job pods without running them.
      ...(this.backupDir
        ? ['--backup-dir', this.backupDir, '--backup-key-file', this.backupKeyFile, '--backup-agent-image', 'registry.example/storefleet:ui-test']
        : []),
    ];
  }

  /** Starts the server and waits until it listens and /readyz answers 200. */
  async start() {
    const offset = existsSync(this.logPath) ? readFileSync(this.logPath).length : 0;
    const log = openSync(this.logPath, 'a');
    const env = { ...process.env, KUBECONFIG: this.env.KUBECONFIG, RUST_LOG: 'info,storefleet=debug,kube=warn' };
    delete env.STOREFLEET_ADMIN_TOKEN;
    delete env.STOREFLEET_VALUES;
    delete env.STOREFLEET_INSTANCE;
    this.child = spawn(this.binary, this.args(), { cwd: this.dir, env, stdio: ['ignore', log, log] });
    const child = this.child;
    const addr = await until('storefleet serve to listen', 120_000, () => {
      if (child.exitCode !== null) throw new Error(`storefleet serve exited (${child.exitCode}):\n${this.log()}`);
      const lines = readFileSync(this.logPath, 'utf8').slice(offset).split('\n');
      for (const line of lines) {
        try {
          const entry = JSON.parse(line);
          if (entry.message === 'listening') return entry.addr;
        } catch { /* not JSON */ }
      }
      return null;
    });
    this.base = `http://${addr}`;
    // A restart keeps the address, so that the page can reconnect to it.
    this.listen = addr;
    await until('/readyz to answer 200', 60_000, async () => {
      try {
        return (await fetch(`${this.base}/readyz`)).status === 200;
      } catch {
        return false;
      }
    });
  }

  /** SIGKILL: the page sees the connection drop. */
  async kill() {
    if (!this.child) return;
    const child = this.child;
    this.child = null;
    if (child.exitCode === null) {
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGKILL');
      await exited;
    }
  }

  /** The API as a script sees it (bearer token), to check what the page shows against the server. */
  async api(method, apiPath) {
    const response = await fetch(`${this.base}${apiPath}`, { method, headers: { Authorization: `Bearer ${this.token}` } });
    const text = await response.text();
    return { status: response.status, body: text ? JSON.parse(text) : null };
  }

  log() {
    return existsSync(this.logPath) ? readFileSync(this.logPath, 'utf8') : '';
  }

  /**
   * A whole, sealed backup of `storeId` written on the target by `write-test-backup` (crates/testkit),
   * standing in for the agent, and its StoreBackup object, labelled as the API labels one. The
   * controller then runs its Job (which the stand-in ends without running it), finds the manifest and
   * verifies it: the backup ends Succeeded by the controller's own judgement. Answers the backup id.
   */
  async sealedBackup(storeId) {
    const id = await this.writeBackup(storeId);
    const file = path.join(this.dir, `${id}.json`);
    writeFileSync(file, JSON.stringify({
      apiVersion: 'storefleet.dev/v1alpha1',
      kind: 'StoreBackup',
      metadata: { name: id, labels: { 'storefleet.dev/instance': this.instance, 'storefleet.dev/store-id': storeId } },
      spec: { storeId },
    }));
    await kubectl('create', '-f', file);
    return id;
  }

  /**
   * Writes a whole, sealed backup of `storeId` on the target with `write-test-backup`, as the agent
   * would: at `backupId` (a backup the API asked for, whose Job the stand-in ends without running the
   * agent: written before that Job ends, the controller finds it and marks the backup Succeeded), or
   * at a fresh id. Answers the id.
   */
  async writeBackup(storeId, backupId) {
    const writer = process.env.WRITE_TEST_BACKUP_BIN ?? path.join(ROOT, 'target/debug/write-test-backup');
    if (!existsSync(writer)) throw new Error(`${writer} is missing: run \`cargo build -p testkit --features backups --bin write-test-backup\``);
    const args = ['--dir', this.backupDir, '--key-file', this.backupKeyFile, '--store', storeId];
    if (backupId) args.push('--backup-id', backupId);
    const { stdout } = await run(writer, args);
    return stdout.trim();
  }

  /** The claim a filesystem target's Job mounts in the store's namespace (docs/backups.md). */
  async backupClaim(storeId) {
    const file = path.join(this.dir, `claim-${storeId}.json`);
    writeFileSync(file, JSON.stringify({
      apiVersion: 'v1',
      kind: 'PersistentVolumeClaim',
      metadata: { name: 'storefleet-backups', namespace: storeId },
      spec: { accessModes: ['ReadWriteMany'], storageClassName: 'standard', resources: { requests: { storage: '1Gi' } } },
    }));
    await kubectl('create', '-f', file);
  }

  /** Deletes every Store of this instance (through the server when it runs), then whatever is left. */
  async cleanup() {
    const selector = `storefleet.dev/instance=${this.instance}`;
    const quiet = (p) => p.catch(() => {});
    // Backups and restores are cluster-scoped and outlive their store; a backup's finalizer (its data)
    // needs the controller, so they go first, while it runs.
    const kinds = ['storerestores.storefleet.dev', 'storebackups.storefleet.dev', 'stores.storefleet.dev'];
    if (this.child && process.env.STOREFLEET_KEEP_NAMESPACES === undefined) {
      for (const kind of kinds) await quiet(kubectl('delete', kind, '-l', selector, '--wait=true', '--timeout=180s'));
    }
    await this.kill();
    if (process.env.STOREFLEET_KEEP_NAMESPACES !== undefined) return;
    const left = (await Promise.all(kinds.map((kind) => kubectl('get', kind, '-l', selector, '-o', 'name').catch(() => '')))).join('\n');
    for (const name of left.split('\n').filter(Boolean)) {
      await quiet(kubectl('patch', name, '--type=merge', '-p', '{"metadata":{"finalizers":null}}'));
      await quiet(kubectl('delete', name, '--wait=false', '--ignore-not-found'));
    }
    await quiet(kubectl('delete', 'namespaces', '-l', selector, '--wait=false', '--ignore-not-found'));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
