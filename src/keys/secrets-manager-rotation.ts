import {
  DescribeSecretCommand,
  GetSecretValueCommand,
  PutSecretValueCommand,
  type SecretsManagerClient,
  UpdateSecretVersionStageCommand,
} from "@aws-sdk/client-secrets-manager";
import { FieldsealError } from "../errors.js";
import { decodeKeyring, encodeKeyring } from "./keyring-codec.js";
import { withNewPrimary } from "./keyring-state.js";
import { isSuccessor, MAX_SECRET_BYTES } from "./secrets-manager-store.js";
import { isTutorialSecret, keyringFromTutorialSecret } from "./tutorial-secret.js";

/** The event Secrets Manager sends to a rotation function. */
export interface RotationEvent {
  readonly Step: "createSecret" | "setSecret" | "testSecret" | "finishSecret";
  readonly SecretId: string;
  readonly ClientRequestToken: string;
}

export interface RotationHandlerOptions {
  client: SecretsManagerClient;
  /** Secret name prefix stripped to get the keyring name. Default "fieldseal/". */
  secretPrefix?: string;
  /** Keyring name for a secret that does not carry the prefix (e.g. the tutorial's secret). */
  keyringNameFor?: (secretName: string) => string;
  /** Clock, for tests. */
  now?: () => Date;
}

const CURRENT = "AWSCURRENT";
const PENDING = "AWSPENDING";

/** Returns the rotation function: `await handler(event)` runs one step. */
export function createRotationHandler(
  options: RotationHandlerOptions,
): (event: RotationEvent) => Promise<void> {
  const { client } = options;
  const prefix = options.secretPrefix ?? "fieldseal/";
  const nameFor =
    options.keyringNameFor ??
    ((secret: string) => (secret.startsWith(prefix) ? secret.slice(prefix.length) : secret));
  const now = options.now ?? (() => new Date());

  async function read(
    secretId: string,
    which: { VersionStage: string } | { VersionId: string; VersionStage: string },
  ) {
    const out = await client.send(new GetSecretValueCommand({ SecretId: secretId, ...which }));
    if (out.SecretString === undefined || out.VersionId === undefined || out.Name === undefined) {
      throw new FieldsealError("internal", `secret for rotation is not a text secret`);
    }
    const name = nameFor(out.Name);
    const text = out.SecretString;
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch {
      throw new FieldsealError("internal", `stored keyring "${name}" is malformed: not JSON`);
    }
    const state = isTutorialSecret(value)
      ? keyringFromTutorialSecret(value, name, (out.CreatedDate ?? new Date(0)).toISOString())
      : decodeKeyring(text, name);
    return { versionId: out.VersionId, state };
  }

  async function readPending(event: RotationEvent) {
    try {
      return await read(event.SecretId, { VersionId: event.ClientRequestToken, VersionStage: PENDING });
    } catch (err) {
      if (err instanceof Error && err.name === "ResourceNotFoundException") return undefined;
      throw err;
    }
  }

  /** The pending keyring must be the current one plus one revision, keeping every version byte for byte. */
  async function checkPending(event: RotationEvent) {
    const current = await read(event.SecretId, { VersionStage: CURRENT });
    const pending = await readPending(event);
    if (!pending) {
      throw new FieldsealError(
        "failed_precondition",
        `rotation of "${current.state.name}": no pending version`,
      );
    }
    if (!isSuccessor(current.state, pending.state)) {
      throw new FieldsealError(
        "conflict",
        `rotation of "${current.state.name}": the pending keyring does not extend the current one`,
      );
    }
    return { current, pending };
  }

  return async (event: RotationEvent): Promise<void> => {
    const described = await client.send(new DescribeSecretCommand({ SecretId: event.SecretId }));
    // RotateSecret registers the token as an empty AWSPENDING version before createSecret runs; a direct
    // call of createSecret (as in tests) may name a token the secret has not seen yet.
    const stages = described.VersionIdsToStages?.[event.ClientRequestToken] ?? [];
    if (stages.length === 0 && event.Step !== "createSecret") {
      throw new FieldsealError("failed_precondition", "rotation token is not a version of the secret");
    }
    switch (event.Step) {
      case "createSecret": {
        const current = await read(event.SecretId, { VersionStage: CURRENT });
        if (await readPending(event)) return;
        const next = withNewPrimary(current.state, now().getTime());
        const text = encodeKeyring(next);
        if (Buffer.byteLength(text, "utf8") > MAX_SECRET_BYTES) {
          throw new FieldsealError("too_large", `keyring "${next.name}" cannot take another version`);
        }
        await client.send(
          new PutSecretValueCommand({
            SecretId: event.SecretId,
            ClientRequestToken: event.ClientRequestToken,
            SecretString: text,
            VersionStages: [PENDING],
          }),
        );
        return;
      }
      case "setSecret":
        // Nothing outside Secrets Manager holds the key.
        return;
      case "testSecret":
        await checkPending(event);
        return;
      case "finishSecret": {
        if (stages.includes(CURRENT)) return;
        const { current } = await checkPending(event);
        // Fails if AWSCURRENT moved since it was read: the keyring changed under the rotation.
        await client.send(
          new UpdateSecretVersionStageCommand({
            SecretId: event.SecretId,
            VersionStage: CURRENT,
            MoveToVersionId: event.ClientRequestToken,
            RemoveFromVersionId: current.versionId,
          }),
        );
        return;
      }
    }
  };
}
