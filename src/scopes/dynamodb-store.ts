/**
 * Scope keys in Amazon DynamoDB, for the AWS deployment. One item per (keyring, scope): partition key
 * `keyring`, sort key `scope`. Reads are GetItem with ConsistentRead; every write is a PutItem with a
 * condition (attribute_not_exists for a first key or a first tombstone; state and generation for the
 * next key over a tombstone, and for a tombstone over a live key), so replicas racing on one scope
 * converge on one item. See https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Expressions.ConditionExpressions.html
 */
import {
  type AttributeValue,
  CreateTableCommand,
  DescribeTableCommand,
  DynamoDBClient,
  type DynamoDBClientConfig,
  GetItemCommand,
  PutItemCommand,
  QueryCommand,
  type QueryCommandOutput,
  ResourceNotFoundException,
  waitUntilTableExists,
} from "@aws-sdk/client-dynamodb";
import { FieldsealError } from "../errors.js";
import type { LiveScopeKey, ScopeKeyRecord, ScopeKeyStore } from "./types.js";

const MAX_ATTEMPTS = 8;
/** Query pages walked for one keyring (1 MB each): a bound, far above any real table. */
const MAX_PAGES = 100_000;

export interface DynamoDbScopeKeyStoreOptions {
  readonly table: string;
  readonly region?: string;
  readonly endpoint?: string;
  readonly credentials?: DynamoDBClientConfig["credentials"];
  /** Per-attempt request timeout in ms. Default 5000. */
  readonly requestTimeoutMs?: number;
}

/** The ScopeKeyStore on DynamoDB. */
export class DynamoDbScopeKeyStore implements ScopeKeyStore {
  readonly kind = "dynamodb";
  readonly #client: DynamoDBClient;
  readonly #table: string;

  constructor(options: DynamoDbScopeKeyStoreOptions) {
    const timeout = options.requestTimeoutMs ?? 5_000;
    this.#client = new DynamoDBClient({
      maxAttempts: 3,
      requestHandler: { connectionTimeout: Math.min(timeout, 3_000), requestTimeout: timeout },
      ...(options.region === undefined ? {} : { region: options.region }),
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
      ...(options.credentials === undefined ? {} : { credentials: options.credentials }),
    });
    this.#table = options.table;
  }

  /**
   * Creates the table (on-demand billing) when it does not exist, and waits until it is active. For
   * operators and tests; the server itself needs only GetItem and PutItem on the table.
   */
  async createTable(): Promise<void> {
    try {
      await this.#client.send(new DescribeTableCommand({ TableName: this.#table }));
      return;
    } catch (err) {
      if (!(err instanceof ResourceNotFoundException)) throw unavailable(err, this.#table);
    }
    try {
      await this.#client.send(
        new CreateTableCommand({
          TableName: this.#table,
          BillingMode: "PAY_PER_REQUEST",
          AttributeDefinitions: [
            { AttributeName: "keyring", AttributeType: "S" },
            { AttributeName: "scope", AttributeType: "S" },
          ],
          KeySchema: [
            { AttributeName: "keyring", KeyType: "HASH" },
            { AttributeName: "scope", KeyType: "RANGE" },
          ],
        }),
      );
      await waitUntilTableExists({ client: this.#client, maxWaitTime: 60 }, { TableName: this.#table });
    } catch (err) {
      throw unavailable(err, this.#table);
    }
  }

  async get(keyring: string, scope: string): Promise<ScopeKeyRecord | undefined> {
    let item: Record<string, { S?: string; N?: string; B?: Uint8Array }> | undefined;
    try {
      const out = await this.#client.send(
        new GetItemCommand({
          TableName: this.#table,
          Key: { keyring: { S: keyring }, scope: { S: scope } },
          ConsistentRead: true,
        }),
      );
      item = out.Item;
    } catch (err) {
      throw unavailable(err, this.#table);
    }
    if (item === undefined) return undefined;
    const generation = Number(item.generation?.N);
    if (item.state?.S === "forgotten") {
      return { state: "forgotten", keyring, scope, generation, forgottenAt: String(item.forgottenAt?.S) };
    }
    const wrapped = item.wrapped?.B;
    if (item.state?.S !== "live" || wrapped === undefined || !Number.isInteger(generation)) {
      throw new FieldsealError("internal", `scope key item in keyring "${keyring}" is malformed`);
    }
    return {
      state: "live",
      keyring,
      scope,
      generation,
      wrapped: new Uint8Array(wrapped),
      wrapVersion: Number(item.wrapVersion?.N),
      createdAt: String(item.createdAt?.S),
    };
  }

  async createKey(next: LiveScopeKey): Promise<ScopeKeyRecord> {
    const first = next.generation === 1;
    await this.#putIf(
      {
        keyring: { S: next.keyring },
        scope: { S: next.scope },
        state: { S: "live" },
        generation: { N: String(next.generation) },
        wrapped: { B: next.wrapped },
        wrapVersion: { N: String(next.wrapVersion) },
        createdAt: { S: next.createdAt },
      },
      first ? "attribute_not_exists(#keyring)" : "#state = :forgotten AND #generation = :previous",
      first
        ? undefined
        : { ":forgotten": { S: "forgotten" }, ":previous": { N: String(next.generation - 1) } },
    );
    const now = await this.get(next.keyring, next.scope);
    if (now === undefined) throw new FieldsealError("internal", "scope key vanished right after its write");
    return now;
  }

  async rewrapKey(
    current: LiveScopeKey,
    wrapped: Uint8Array,
    wrapVersion: number,
  ): Promise<ScopeKeyRecord | undefined> {
    await this.#putIf(
      {
        keyring: { S: current.keyring },
        scope: { S: current.scope },
        state: { S: "live" },
        generation: { N: String(current.generation) },
        wrapped: { B: wrapped },
        wrapVersion: { N: String(wrapVersion) },
        createdAt: { S: current.createdAt },
      },
      "#state = :live AND #generation = :generation AND #wrapVersion = :wrapVersion",
      {
        ":live": { S: "live" },
        ":generation": { N: String(current.generation) },
        ":wrapVersion": { N: String(current.wrapVersion) },
      },
    );
    return this.get(current.keyring, current.scope);
  }

  async forget(
    keyring: string,
    scope: string,
    forgottenAt: string,
    through?: number,
  ): Promise<ScopeKeyRecord> {
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const current = await this.get(keyring, scope);
      if (current?.state === "forgotten") return current;
      if (current !== undefined && through !== undefined && current.generation > through) return current;
      // A recorded forget re-applied over an older key (a restored backup) keeps the recorded generation,
      // so generations that existed after the backup are never made again.
      const generation = Math.max(current?.generation ?? 0, through ?? 0);
      const tombstone = {
        keyring: { S: keyring },
        scope: { S: scope },
        state: { S: "forgotten" },
        generation: { N: String(generation) },
        forgottenAt: { S: forgottenAt },
      };
      // PutItem replaces the whole item: the wrapped key is not kept beside the tombstone.
      const wrote =
        current === undefined
          ? await this.#putIf(tombstone, "attribute_not_exists(#keyring)")
          : await this.#putIf(tombstone, "#state = :live AND #generation = :generation", {
              ":live": { S: "live" },
              ":generation": { N: String(current.generation) },
            });
      if (wrote) return { state: "forgotten", keyring, scope, generation, forgottenAt };
    }
    throw new FieldsealError(
      "conflict",
      `scope in keyring "${keyring}": forget lost ${MAX_ATTEMPTS} races in a row`,
    );
  }

  async *liveKeysWrappedBelow(keyring: string, version: number): AsyncIterable<LiveScopeKey> {
    let start: Record<string, AttributeValue> | undefined;
    for (let page = 0; page < MAX_PAGES; page++) {
      let out: QueryCommandOutput;
      try {
        out = await this.#client.send(
          new QueryCommand({
            TableName: this.#table,
            KeyConditionExpression: "#keyring = :keyring",
            FilterExpression: "#state = :live AND #wrapVersion < :version",
            ExpressionAttributeNames: expressionNames("#keyring #state #wrapVersion"),
            ExpressionAttributeValues: {
              ":keyring": { S: keyring },
              ":live": { S: "live" },
              ":version": { N: String(version) },
            },
            ConsistentRead: true,
            ...(start === undefined ? {} : { ExclusiveStartKey: start }),
          }),
        );
      } catch (err) {
        throw unavailable(err, this.#table);
      }
      for (const item of out.Items ?? []) {
        const wrapped = item.wrapped?.B;
        if (wrapped === undefined) continue;
        yield {
          state: "live",
          keyring,
          scope: String(item.scope?.S),
          generation: Number(item.generation?.N),
          wrapped: new Uint8Array(wrapped),
          wrapVersion: Number(item.wrapVersion?.N),
          createdAt: String(item.createdAt?.S),
        };
      }
      start = out.LastEvaluatedKey;
      if (start === undefined) return;
    }
    throw new FieldsealError(
      "store_unavailable",
      `scope key table: more than ${MAX_PAGES} pages for one keyring`,
    );
  }

  async close(): Promise<void> {
    this.#client.destroy();
  }

  /** A conditional PutItem: true when written, false when the condition did not hold. */
  async #putIf(
    item: Record<string, { S: string } | { N: string } | { B: Uint8Array }>,
    condition: string,
    values?: Record<string, { S: string } | { N: string }>,
  ): Promise<boolean> {
    try {
      await this.#client.send(
        new PutItemCommand({
          TableName: this.#table,
          Item: item,
          ConditionExpression: condition,
          ExpressionAttributeNames: expressionNames(condition),
          ...(values === undefined ? {} : { ExpressionAttributeValues: values }),
        }),
      );
      return true;
    } catch (err) {
      if ((err as { name?: string })?.name === "ConditionalCheckFailedException") return false;
      throw unavailable(err, this.#table);
    }
  }
}

/**
 * Every attribute name in an expression goes through an alias (`#state` for `state`...): some are DynamoDB
 * reserved words, and an alias can never be one. Only the aliases the expression uses: DynamoDB refuses
 * unused ones.
 */
function expressionNames(expression: string): Record<string, string> {
  const names: Record<string, string> = {};
  for (const [alias, name] of expression.matchAll(/#(\w+)/g)) names[alias] = name as string;
  return names;
}

/** What an operator can act on, by the SDK error's name (see the DynamoDB API reference, "Common Errors"). */
const CAUSES: Readonly<Record<string, string>> = {
  ResourceNotFoundException: "does not exist or is not active (create it: fieldseal scopes create-table)",
  ProvisionedThroughputExceededException: "is throttling requests (provisioned throughput exceeded)",
  ThrottlingException: "is throttling requests",
  RequestLimitExceeded: "is throttling requests (account request limit exceeded)",
  AccessDeniedException:
    "refused the call: the server needs dynamodb:GetItem and dynamodb:PutItem on it (and dynamodb:Query to destroy key versions of an erasable keyring)",
};

function unavailable(err: unknown, table: string): FieldsealError {
  // The error's name only: an SDK message can quote the request, which holds a wrapped key.
  const name = (err as { name?: string })?.name ?? "error";
  const cause = Object.hasOwn(CAUSES, name) ? ` ${CAUSES[name]}` : "";
  return new FieldsealError(
    "store_unavailable",
    `scope key table ${JSON.stringify(table)}${cause}: call failed (${name})`,
  );
}
