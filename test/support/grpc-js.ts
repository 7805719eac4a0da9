import {
  create,
  type DescMessage,
  type DescService,
  fromBinary,
  type MessageInitShape,
  type MessageShape,
  toBinary,
} from "@bufbuild/protobuf";
import * as grpc from "@grpc/grpc-js";

/**
 * A real @grpc/grpc-js client for any generated service, serializing with protobuf-es: the same wire
 * traffic a Go, Java or Python gRPC client sends.
 */
export function grpcJsClient(
  service: DescService,
  address: string,
  credentials = grpc.credentials.createInsecure(),
  options: grpc.ChannelOptions = {},
) {
  const definition: Record<
    string,
    grpc.MethodDefinition<MessageShape<DescMessage>, MessageShape<DescMessage>>
  > = {};
  for (const method of service.methods) {
    definition[method.localName] = {
      path: `/${service.typeName}/${method.name}`,
      requestStream: method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming",
      responseStream: method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming",
      requestSerialize: (msg: MessageShape<DescMessage>) => Buffer.from(toBinary(method.input, msg)),
      requestDeserialize: (bytes: Buffer) => fromBinary(method.input, bytes),
      responseSerialize: (msg: MessageShape<DescMessage>) => Buffer.from(toBinary(method.output, msg)),
      responseDeserialize: (bytes: Buffer) => fromBinary(method.output, bytes),
    };
  }
  const Client = grpc.makeGenericClientConstructor(definition, service.typeName);
  return new Client(address, credentials, options);
}

/** Calls a unary method and resolves with its response, or rejects with the grpc-js ServiceError. */
export function unary<I extends DescMessage, O extends DescMessage>(
  client: grpc.Client,
  method: { localName: string; input: I; output: O },
  request: MessageInitShape<I>,
  token?: string,
  /** Deadline of the call, from now (none by default). */
  deadlineMs?: number,
): Promise<MessageShape<O>> {
  const metadata = new grpc.Metadata();
  if (token !== undefined) metadata.set("authorization", `Bearer ${token}`);
  const fn = (client as unknown as Record<string, (...args: unknown[]) => unknown>)[method.localName];
  if (fn === undefined) throw new Error(`no method ${method.localName}`);
  return new Promise((resolve, reject) => {
    fn.call(
      client,
      create(method.input, request),
      metadata,
      deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs },
      (err: grpc.ServiceError | null, res: MessageShape<O>) => (err === null ? resolve(res) : reject(err)),
    );
  });
}

export { grpc };
