/** Peer addresses as the listener sees them. */

/** `::ffff:172.30.32.2` -> `172.30.32.2` (an IPv4 peer on a dual-stack socket); anything else unchanged. */
export function normalizePeer(address: string | undefined): string {
  if (address === undefined) return "";
  return address.startsWith("::ffff:") && address.includes(".") ? address.slice(7) : address;
}
