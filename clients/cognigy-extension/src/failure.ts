/** Why a node took its failure branch: a stable reason code and a message that never carries a value. */
export class NodeFailure extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = "NodeFailure";
  }
}
