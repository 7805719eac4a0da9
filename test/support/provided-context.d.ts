/** Values the global setup provides to every test file through `inject`. */
import "vitest";

declare module "vitest" {
  export interface ProvidedContext {
    /** Base URL of the shared moto Secrets Manager emulator. */
    motoEndpoint: string;
  }
}
