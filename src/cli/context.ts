// What every command shares: the global options and opening the store they name.
import { openStore, type Store } from '../store/store.js';

export interface GlobalArgs {
  root?: string;
}

export function storeFor(argv: GlobalArgs): Promise<Store> {
  return openStore(argv.root);
}
