/**
 * Mutual authentication of WebSocket peers with a shared token, without sending the token:
 * the server sends a nonce, the client answers HMAC-SHA256(token, "client|nonce|run|rank")
 * with its own nonce, the server answers HMAC(token, "server|clientNonce|run|rank"). Both
 * sides also check the protocol version, run id and world size. A rejected client sees the
 * close reason (code {@linkcode REJECT_CODE}).
 * @module
 */
import { FRAME_VERSION } from "./frame.ts";
import type { SocketReader } from "./socket_reader.ts";

/** WebSocket close code of a rejected handshake. */
export const REJECT_CODE = 4401;
const PROTOCOL = "lasp-ws";

/** What a client states about itself. */
export interface HelloInfo {
  rank: number;
  /** "register": rendezvous with rank 0 (then `address` is this rank's listening address). */
  purpose: "register" | "peer";
  address?: string;
}

/** Run-wide facts both sides must share. */
export interface RunIdentity {
  runId: string;
  world: number;
  token: string;
}

interface Challenge {
  t: "challenge";
  proto: string;
  version: number;
  nonce: string;
}
interface Hello extends HelloInfo {
  t: "hello";
  runId: string;
  world: number;
  nonce: string;
  mac: string;
}
interface Welcome {
  t: "welcome";
  rank: number;
  mac: string;
}

const encoder = new TextEncoder();
const keys = new Map<string, Promise<CryptoKey>>();

async function hmac(token: string, message: string): Promise<string> {
  let key = keys.get(token);
  if (!key) {
    key = crypto.subtle.importKey(
      "raw",
      encoder.encode(token),
      { name: "HMAC", hash: "SHA-256" },
      false,
      [
        "sign",
      ],
    );
    keys.set(token, key);
  }
  const mac = await crypto.subtle.sign("HMAC", await key, encoder.encode(message));
  return Array.from(new Uint8Array(mac), (b) => b.toString(16).padStart(2, "0")).join("");
}

function nonce(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(16)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

function sameString(a: string, b: string): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
  return diff === 0;
}

function parse<T extends { t: string }>(message: string | ArrayBuffer, t: T["t"]): T {
  if (typeof message !== "string") throw new Error(`expected the ${t} message, got binary data`);
  let value: T;
  try {
    value = JSON.parse(message);
  } catch {
    throw new Error(`expected the ${t} message, got unreadable text`);
  }
  if (value?.t !== t) throw new Error(`expected the ${t} message, got ${JSON.stringify(value?.t)}`);
  return value;
}

/**
 * Server side: challenges the client and checks its answer with `accept` (which may reject
 * with a reason, e.g. an unexpected rank). Returns the client's hello; on failure closes the
 * socket with the reason and throws it.
 */
export async function serverHandshake(
  reader: SocketReader,
  me: RunIdentity & { rank: number },
  timeoutMs: number,
  accept: (hello: HelloInfo) => string | undefined,
): Promise<HelloInfo> {
  const socket = reader.socket;
  const challenge: Challenge = {
    t: "challenge",
    proto: PROTOCOL,
    version: FRAME_VERSION,
    nonce: nonce(),
  };
  socket.send(JSON.stringify(challenge));
  let reason: string | undefined;
  let hello: Hello | undefined;
  try {
    hello = parse<Hello>(await reader.next(timeoutMs, "hello"), "hello");
    if (hello.runId !== me.runId) {
      reason = `wrong run id "${hello.runId}" (this run is "${me.runId}")`;
    } else if (hello.world !== me.world) {
      reason = `world size ${hello.world} differs from ${me.world}`;
    } else if (!Number.isInteger(hello.rank) || hello.rank < 0 || hello.rank >= me.world) {
      reason = `invalid rank ${hello.rank} for a world of ${me.world}`;
    } else {
      const expected = await hmac(me.token, `client|${challenge.nonce}|${me.runId}|${hello.rank}`);
      if (!sameString(String(hello.mac), expected)) reason = "bad token (authentication failed)";
      else reason = accept(hello);
    }
  } catch (e) {
    reason = (e as Error).message;
  }
  if (reason !== undefined) {
    if (!reader.closed) socket.close(REJECT_CODE, reason.slice(0, 120));
    throw new Error(`rejected a client${hello ? ` claiming rank ${hello.rank}` : ""}: ${reason}`);
  }
  const welcome: Welcome = {
    t: "welcome",
    rank: me.rank,
    mac: await hmac(me.token, `server|${hello!.nonce}|${me.runId}|${me.rank}`),
  };
  socket.send(JSON.stringify(welcome));
  return { rank: hello!.rank, purpose: hello!.purpose, address: hello!.address };
}

/**
 * Client side: answers the server's challenge and checks that the server knows the token and
 * is rank `serverRank`. Throws a one-line reason (the server's close reason when it refused).
 */
export async function clientHandshake(
  reader: SocketReader,
  me: RunIdentity,
  info: HelloInfo,
  serverRank: number,
  timeoutMs: number,
): Promise<void> {
  const socket = reader.socket;
  try {
    const challenge = parse<Challenge>(await reader.next(timeoutMs, "challenge"), "challenge");
    if (challenge.proto !== PROTOCOL || challenge.version !== FRAME_VERSION) {
      throw new Error(
        `server speaks ${challenge.proto} v${challenge.version}, this build ${PROTOCOL} v${FRAME_VERSION}`,
      );
    }
    const myNonce = nonce();
    const hello: Hello = {
      t: "hello",
      ...info,
      runId: me.runId,
      world: me.world,
      nonce: myNonce,
      mac: await hmac(me.token, `client|${challenge.nonce}|${me.runId}|${info.rank}`),
    };
    socket.send(JSON.stringify(hello));
    const welcome = parse<Welcome>(await reader.next(timeoutMs, "welcome"), "welcome");
    const expected = await hmac(me.token, `server|${myNonce}|${me.runId}|${serverRank}`);
    if (welcome.rank !== serverRank || !sameString(String(welcome.mac), expected)) {
      throw new Error(
        `the server is not rank ${serverRank} of this run (bad token or wrong address)`,
      );
    }
  } catch (e) {
    if (!reader.closed) socket.close(REJECT_CODE, "handshake failed");
    throw new Error(`rejected the connection: ${(e as Error).message}`);
  }
}
