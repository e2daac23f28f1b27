// sd_notify(3) without libsystemd: one datagram to $NOTIFY_SOCKET. systemd (Type=notify) and the
// createRuntime hook that starts the daemon on demand both wait for READY=1.
import { native } from '../native-addon.js';

/** Sends `fields` (e.g. {READY: '1'}) when $NOTIFY_SOCKET is set; returns whether it did. */
export function sdNotify(fields: Record<string, string>, env: NodeJS.ProcessEnv = process.env): boolean {
  const path = env.NOTIFY_SOCKET;
  if (!path) return false;
  const text = Object.entries(fields)
    .map(([k, v]) => `${k}=${v.replace(/\n/g, ' ')}\n`)
    .join('');
  native.sendDatagram(path, Buffer.from(text));
  return true;
}
