// Copies the non-TypeScript files the compiled code loads at run time (proto definitions) into dist/.
import { cpSync } from 'node:fs';

cpSync('core/proto', 'dist/core/proto', { recursive: true });
