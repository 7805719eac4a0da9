import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

/** PEM files of one certificate and its key. */
export interface CertFiles {
  readonly certFile: string;
  readonly keyFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
}

/** Test PKI, made fresh per run with the openssl CLI (Node cannot sign X.509 certificates by itself). */
export interface TestPki {
  readonly dir: string;
  readonly ca: CertFiles;
  /** 127.0.0.1 and localhost, signed by `ca`. */
  readonly server: CertFiles;
  /** CN=billing-svc, SAN URI spiffe://fieldseal.test/billing, signed by `ca`. */
  readonly billing: CertFiles;
  /** CN=stranger, signed by `ca` but mapped to no principal. */
  readonly stranger: CertFiles;
  /** CN=billing-svc with the same SAN, signed by another CA: must never pass for billing. */
  readonly impostor: CertFiles;
  remove(): void;
}

function openssl(dir: string, args: string[]): void {
  execFileSync("openssl", args, { cwd: dir, stdio: ["ignore", "ignore", "pipe"] });
}

function files(dir: string, name: string): CertFiles {
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
}

function makeCa(dir: string, name: string): void {
  openssl(dir, [
    "req",
    "-x509",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.crt`,
    "-days",
    "2",
    "-subj",
    `/CN=${name}`,
    "-addext",
    "basicConstraints=critical,CA:TRUE",
    "-addext",
    "keyUsage=critical,keyCertSign,cRLSign",
  ]);
}

function makeLeaf(dir: string, name: string, ca: string, cn: string, ext: string): void {
  writeFileSync(join(dir, `${name}.ext`), `${ext}\nbasicConstraints=CA:FALSE\n`);
  openssl(dir, [
    "req",
    "-new",
    "-newkey",
    "ec",
    "-pkeyopt",
    "ec_paramgen_curve:P-256",
    "-nodes",
    "-keyout",
    `${name}.key`,
    "-out",
    `${name}.csr`,
    "-subj",
    `/CN=${cn}`,
  ]);
  openssl(dir, [
    "x509",
    "-req",
    "-in",
    `${name}.csr`,
    "-CA",
    `${ca}.crt`,
    "-CAkey",
    `${ca}.key`,
    "-CAcreateserial",
    "-out",
    `${name}.crt`,
    "-days",
    "2",
    "-extfile",
    `${name}.ext`,
  ]);
}

/** Creates a CA, a server certificate, two client certificates from it and one from another CA. */
export function createTestPki(): TestPki {
  const dir = mkdtempSync(join(tmpdir(), "fieldseal-pki-"));
  makeCa(dir, "ca");
  makeCa(dir, "other-ca");
  makeLeaf(
    dir,
    "server",
    "ca",
    "localhost",
    "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth",
  );
  const client = "subjectAltName=URI:spiffe://fieldseal.test/billing\nextendedKeyUsage=clientAuth";
  makeLeaf(dir, "billing", "ca", "billing-svc", client);
  makeLeaf(dir, "stranger", "ca", "stranger", "extendedKeyUsage=clientAuth");
  makeLeaf(dir, "impostor", "other-ca", "billing-svc", client);
  return {
    dir,
    ca: files(dir, "ca"),
    server: files(dir, "server"),
    billing: files(dir, "billing"),
    stranger: files(dir, "stranger"),
    impostor: files(dir, "impostor"),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
