import { closeSync, fchmodSync, openSync, writeSync } from "node:fs";

/**
 * The audit trail: one event per decrypt, rewrap, rotation, retirement, push and policy denial, written to
 * its own stream so it can be shipped apart from operational logs. Events name who, what, which key
 * version, scope and field, and the outcome; never a value, a sealed payload or key material.
 */
export interface AuditEvent {
  readonly action:
    | "encrypt"
    | "decrypt"
    | "rewrap"
    | "rotate"
    | "retire"
    | "create"
    | "destroy"
    /** ForgetScope: a scope's data key destroyed (`generation` says which). */
    | "forget"
    | "push"
    | "describe"
    /** A blind index computed (ComputeIndex, or EncryptFields with index_fields). */
    | "index"
    /** A call refused before any handler ran: no, unknown or untrusted credentials. */
    | "authenticate";
  /** Empty when the caller could not be authenticated. */
  readonly principal: string;
  readonly outcome: "ok" | "denied" | "error";
  readonly requestId?: string;
  /** The RPC, for events recorded before a handler ran. */
  readonly rpc?: string;
  readonly keyring?: string;
  readonly version?: number;
  readonly toVersion?: number;
  /** The scope data key generation a forget destroyed (0: the scope had none yet). */
  readonly generation?: number;
  readonly scopeKind?: "session" | "user";
  readonly scopeId?: string;
  readonly field?: string;
  readonly fields?: readonly string[];
  /** Fieldseal error code when the outcome is not ok. */
  readonly code?: string;
  /** Set on legacy tutorial values. */
  readonly legacy?: boolean;
  /**
   * "unauthenticated" on legacy tutorial values: the field they claim sits outside the GCM tag, so `field`
   * is what the caller asked for and the blob claims, not something the cipher proved.
   */
  readonly fieldLabel?: "unauthenticated";
}

/** Where audit events go. */
export interface AuditSink {
  record(event: AuditEvent): void;
  /** Releases the stream, if the sink owns one. */
  close?(): void;
  /** Reopens the sink's file at its path (after log rotation moved it), if it writes to one. */
  reopen?(): void;
}

/** Writes audit events as JSON lines to `write`. */
export function jsonLinesAudit(write: (line: string) => void): AuditSink {
  return {
    record(event) {
      write(`${JSON.stringify({ time: new Date().toISOString(), audit: true, ...event })}\n`);
    },
  };
}

/**
 * Appends audit events as JSON lines to `path`, creating it 0600 (and tightening an existing file to 0600:
 * the trail names sessions and callers). Each event is one synchronous append, so an event is on its way
 * to disk before the call it records answers, and concurrent writers never interleave within a line.
 */
export function fileAudit(path: string): AuditSink {
  const openFile = () => {
    const fd = openSync(path, "a", 0o600);
    fchmodSync(fd, 0o600);
    return fd;
  };
  let fd = openFile();
  const sink = jsonLinesAudit((line) => {
    writeSync(fd, line);
  });
  let open = true;
  return {
    record: (event) => {
      if (open) sink.record(event);
    },
    reopen() {
      if (!open) return;
      // Open the new file before closing the old one: no event is ever without a file to go to.
      const next = openFile();
      const previous = fd;
      fd = next;
      closeSync(previous);
    },
    close() {
      if (!open) return;
      open = false;
      closeSync(fd);
    },
  };
}

/** Keeps events in memory; for tests. */
export class MemoryAudit implements AuditSink {
  readonly events: AuditEvent[] = [];
  record(event: AuditEvent): void {
    this.events.push(event);
  }
}
