/**
 * Reading a WebSocket as a sequence of messages: `next()` during the handshake, then a
 * handler for the data phase. Also opening a client socket with retries until a deadline.
 * @module
 */
import { connectWebSocket, type TcpWebSocket, type WsMessage } from "./tcp_websocket.ts";

/** A message as it arrives: text (handshake) or binary (frames). */
export type SocketMessage = WsMessage;

/** Queues a socket's messages until someone takes them; remembers how it closed. */
export class SocketReader {
  #queue: SocketMessage[] = [];
  #wake: (() => void) | undefined;
  #handler: ((message: SocketMessage) => void) | undefined;
  /** Called once when the socket closes (after `closed` is set). */
  onClose: ((code: number, reason: string) => void) | undefined;

  constructor(readonly socket: TcpWebSocket) {
    socket.onmessage = (data) => {
      if (this.#handler) this.#handler(data);
      else {
        this.#queue.push(data);
        this.#wake?.();
      }
    };
    socket.onclose = (code, reason) => {
      this.#wake?.();
      this.onClose?.(code, reason);
    };
  }

  /** Set once the socket closed: code and reason. */
  get closed(): { code: number; reason: string } | undefined {
    return this.socket.closed;
  }

  /** The next message; rejects when the socket closes first or after `timeoutMs`. */
  async next(timeoutMs: number, what: string): Promise<SocketMessage> {
    const deadline = performance.now() + timeoutMs;
    while (this.#queue.length === 0) {
      if (this.closed) {
        const { code, reason } = this.closed;
        throw new Error(
          `connection closed while waiting for ${what} (code ${code}${
            reason ? `: ${reason}` : ""
          })`,
        );
      }
      const left = deadline - performance.now();
      if (left <= 0) throw new Error(`no ${what} within ${timeoutMs} ms`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
      this.#wake = undefined;
    }
    return this.#queue.shift()!;
  }

  /** Routes all further messages (and any queued ones) to `handler`. */
  handle(handler: (message: SocketMessage) => void): void {
    this.#handler = handler;
    for (const m of this.#queue.splice(0)) handler(m);
  }
}

/**
 * Opens a client socket to `url`, retrying every 50 ms until `deadline`
 * (`performance.now()` time): the peer may not be listening yet.
 */
export async function connectWithRetry(url: string, deadline: number): Promise<SocketReader> {
  let lastError = "no attempt";
  while (performance.now() < deadline) {
    try {
      const timeoutMs = Math.max(1, deadline - performance.now());
      return new SocketReader(await connectWebSocket(url, { timeoutMs }));
    } catch (e) {
      lastError = (e as Error).message;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(lastError);
}
