// Chain reads through viem: the EvidenceLog's tree heads, anchors and revocations and the
// MemberRegistry's key validity, with the ABIs the contracts were compiled to.
import { createPublicClient, getAddress, http } from "viem";
import { logAbi, registryAbi } from "virtual:abis";

/** The node did not answer, or the address holds no EvidenceLog: nothing could be checked. */
export class Unreachable extends Error {}

const anchored = logAbi.find((e) => e.type === "event" && e.name === "Anchored");

/** A revert is the chain's answer (a failed check); anything else means it did not answer. */
function classify(err, what) {
  let e = err;
  while (e) {
    if (e.name === "ContractFunctionRevertedError") return new Error(`${what}: the contract refused (${e.shortMessage || e.message})`);
    e = e.cause;
  }
  return new Unreachable(`${what}: ${err.shortMessage || err.message}`);
}

export async function connect(rpcUrl, logAddress) {
  let address;
  try {
    address = getAddress(logAddress.trim());
  } catch {
    throw new Unreachable(`${logAddress || "(empty)"} is not an address`);
  }
  let url;
  try {
    url = new URL(rpcUrl.trim());
  } catch {
    throw new Unreachable(`${rpcUrl || "(empty)"} is not a URL`);
  }
  const client = createPublicClient({ transport: http(url.href, { retryCount: 0, timeout: 15000 }) });
  let chainId, code;
  try {
    chainId = await client.getChainId();
    code = await client.getCode({ address });
  } catch (err) {
    throw new Unreachable(`the node at ${url.href} did not answer (${err.shortMessage || err.message}); ` +
      "if it runs, it may refuse this page's origin (CORS)");
  }
  if (!code || code === "0x") throw new Unreachable(`no contract at ${address} on chain ${chainId}`);
  const chain = new Chain(client, address, chainId);
  try {
    chain.registry = await chain.read(address, logAbi, "registry", []);
  } catch (err) {
    throw new Unreachable(`${address} is not an EvidenceLog (${err.message})`);
  }
  return chain;
}

class Chain {
  constructor(client, log, chainId) {
    Object.assign(this, { client, log, chainId });
  }

  async read(address, abi, functionName, args) {
    try {
      return await this.client.readContract({ address, abi, functionName, args });
    } catch (err) {
      throw classify(err, functionName);
    }
  }

  async headAt(index) {
    const h = await this.read(this.log, logAbi, "headAt", [BigInt(index)]);
    return { index, root: h.root.slice(2), size: Number(h.size), timestamp: h.timestamp, block: h.blockNumber };
  }

  /** The head of `size` leaves, which must have `root`: a head is identified by its size and
   * root, never by the index or transaction a receipt names (a chain that lost blocks holds
   * the same head again, anchored by another transaction). */
  async headOfSize(size, root) {
    const index = await this.read(this.log, logAbi, "headIndexOfSize", [BigInt(size)]);
    const head = await this.headAt(Number(index));
    if (head.root !== root) throw new Error(`the chain's head of size ${size} has root ${head.root}, the receipt claims ${root}`);
    return head;
  }

  async anchorTx(head) {
    let logs;
    try {
      logs = await this.client.getLogs({ address: this.log, event: anchored, args: { index: BigInt(head.index) },
        fromBlock: head.block, toBlock: head.block });
    } catch (err) {
      throw classify(err, "Anchored events");
    }
    if (!logs.length) throw new Error(`no Anchored event for head ${head.index} in block ${head.block}`);
    return logs[0].transactionHash.slice(2);
  }

  async keyStatusAt(member, keyId, at) {
    const [status, algorithm, publicKey] = await this.read(this.registry, registryAbi, "keyStatusAt",
      [member, keyId, at]);
    return { status: Number(status), algorithm: Number(algorithm), publicKey };
  }

  async revocationOf(digest, member) {
    const [revoked, reason, at] = await this.read(this.log, logAbi, "revocationOf", [digest, member]);
    return revoked ? { reason: Number(reason), at: Number(at) } : null;
  }
}
