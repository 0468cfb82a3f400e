import { MemoryTokenStore } from '../../src/stores/memory.js';
import { describeTokenStoreContract } from './contract.js';

describeTokenStoreContract('MemoryTokenStore', () => new MemoryTokenStore({ sweepIntervalMs: 0 }));
