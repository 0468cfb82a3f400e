/** Makes the backend of the stores under test unreachable, then reachable again. */
export interface OutageHook {
  /** Make the backend unreachable (stop the server, shut a TCP proxy in front of it…). */
  break(): Promise<void>;
  /** Make it reachable again. The stores must recover by themselves: nothing is recreated. */
  restore(): Promise<void>;
  /** How long one call may take to fail while the backend is unreachable, in ms. Default 5000. */
  failWithinMs?: number;
  /** How long the stores may take to work again once it is back, in ms. Default 15 000. */
  recoverWithinMs?: number;
}
