import { type DescFile, type DescMessage, toBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import type { ServiceImpl } from "@connectrpc/connect";
import type * as v1 from "../../gen/grpc/reflection/v1/reflection_pb.js";
import type * as v1alpha from "../../gen/grpc/reflection/v1alpha/reflection_pb.js";

/** Index of the files a server offers, for reflection: files by name, files by the symbols they declare. */
export class DescriptorIndex {
  readonly #files = new Map<string, DescFile>();
  readonly #symbols = new Map<string, DescFile>();
  readonly services: readonly string[];

  constructor(files: readonly DescFile[], services: readonly string[]) {
    this.services = services;
    const visit = (file: DescFile) => {
      const name = file.proto.name;
      if (this.#files.has(name)) return;
      this.#files.set(name, file);
      for (const dep of file.dependencies) visit(dep);
      const addMessage = (m: DescMessage) => {
        this.#symbols.set(m.typeName, file);
        for (const n of m.nestedMessages) addMessage(n);
        for (const e of m.nestedEnums) this.#symbols.set(e.typeName, file);
      };
      for (const m of file.messages) addMessage(m);
      for (const e of file.enums) this.#symbols.set(e.typeName, file);
      for (const x of file.extensions) this.#symbols.set(x.typeName, file);
      for (const s of file.services) {
        this.#symbols.set(s.typeName, file);
        for (const m of s.methods) this.#symbols.set(`${s.typeName}.${m.name}`, file);
      }
    };
    for (const file of files) visit(file);
  }

  fileByName(name: string): DescFile | undefined {
    return this.#files.get(name);
  }

  fileBySymbol(symbol: string): DescFile | undefined {
    return this.#symbols.get(symbol.replace(/^\./, ""));
  }

  /** The file and everything it imports, serialized, the file itself first. */
  serializedWithDependencies(file: DescFile): Uint8Array[] {
    const out: Uint8Array[] = [];
    const seen = new Set<string>();
    const visit = (f: DescFile) => {
      if (seen.has(f.proto.name)) return;
      seen.add(f.proto.name);
      out.push(toBinary(FileDescriptorProtoSchema, f.proto));
      for (const dep of f.dependencies) visit(dep);
    };
    visit(file);
    return out;
  }
}

const NOT_FOUND = 5;
const UNIMPLEMENTED = 12;

type Request = v1.ServerReflectionRequest | v1alpha.ServerReflectionRequest;

/** One answer to one reflection request; identical for v1 and v1alpha, which share their wire format. */
function answer(index: DescriptorIndex, req: Request) {
  const r = req.messageRequest;
  const files = (file: DescFile | undefined, what: string) =>
    file === undefined
      ? { case: "errorResponse" as const, value: { errorCode: NOT_FOUND, errorMessage: `${what} not found` } }
      : {
          case: "fileDescriptorResponse" as const,
          value: { fileDescriptorProto: index.serializedWithDependencies(file) },
        };
  switch (r.case) {
    case "listServices":
      return {
        case: "listServicesResponse" as const,
        value: { service: index.services.map((name) => ({ name })) },
      };
    case "fileByFilename":
      return files(index.fileByName(r.value), `file "${r.value}"`);
    case "fileContainingSymbol":
      return files(index.fileBySymbol(r.value), `symbol "${r.value}"`);
    case "fileContainingExtension":
      return files(undefined, `extension ${r.value.extensionNumber} of "${r.value.containingType}"`);
    case "allExtensionNumbersOfType":
      return {
        case: "allExtensionNumbersResponse" as const,
        value: { baseTypeName: r.value, extensionNumber: [] },
      };
    default:
      return {
        case: "errorResponse" as const,
        value: { errorCode: UNIMPLEMENTED, errorMessage: "unsupported reflection request" },
      };
  }
}

/** grpc.reflection.v1 ServerReflection. */
export function createReflectionV1(index: DescriptorIndex): ServiceImpl<typeof v1.ServerReflection> {
  return {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        yield { validHost: req.host, originalRequest: req, messageResponse: answer(index, req) };
      }
    },
  };
}

/** grpc.reflection.v1alpha ServerReflection, for clients that still ask the older name. */
export function createReflectionV1alpha(
  index: DescriptorIndex,
): ServiceImpl<typeof v1alpha.ServerReflection> {
  return {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        yield { validHost: req.host, originalRequest: req, messageResponse: answer(index, req) };
      }
    },
  };
}
