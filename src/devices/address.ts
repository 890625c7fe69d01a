/**
 * Where a device is looked for: the address the owner set in the panel, else
 * the YAML's (`use_address`, a static IP, `<name>.local`), except for a
 * host-platform YAML without a network block, which has no mDNS name: such a
 * device runs on this machine, 127.0.0.1, until the owner says otherwise.
 */
import type { AddressSource, Device } from "../domain/device.ts";

export const HOST_DEFAULT_ADDRESS = "127.0.0.1";

export function resolveAddress(device: Pick<Device, "platform" | "address">, hasNetworkBlock: boolean, ownerAddress: string | undefined): { address: string; source: AddressSource } {
  if (ownerAddress !== undefined) return { address: ownerAddress, source: "owner" };
  if (device.platform === "host" && !hasNetworkBlock) return { address: HOST_DEFAULT_ADDRESS, source: "host_default" };
  return { address: device.address, source: "yaml" };
}
