/**
 * Activation functions shared by the kernels that fuse them (matmul epilogue, elementwise).
 * WGSL has no erf, so exact GELU uses a rational approximation accurate to a few f32 ulp over
 * the whole line (the minimax form used by XLA/Eigen for f32; |x| >= 4 saturates to +-1 exactly
 * as erf does in f32).
 */
export type Activation = 'none' | 'gelu' | 'quick_gelu' | 'relu' | 'sigmoid';

export const ACTIVATIONS: readonly Activation[] = ['none', 'gelu', 'quick_gelu', 'relu', 'sigmoid'];

export const ACTIVATION_WGSL = /* wgsl */ `
fn erf_f32(a: f32) -> f32 {
  let x = clamp(a, -4.0, 4.0);
  let x2 = x * x;
  var p = x2 * -2.72614225801306e-10 + 2.77068142495902e-08;
  p = p * x2 + -2.10102402082508e-06;
  p = p * x2 + -5.69250639462346e-05;
  p = p * x2 + -7.34990630326855e-04;
  p = p * x2 + -2.95459980854025e-03;
  p = p * x2 + -1.60960333262415e-02;
  p = p * x;
  var q = x2 * -1.45660718464996e-05 + -2.13374055278905e-04;
  q = q * x2 + -1.68282697438203e-03;
  q = q * x2 + -7.37332916720468e-03;
  q = q * x2 + -1.42647390514189e-02;
  return p / q;
}
fn gelu_f32(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_f32(x * 0.70710678118654752)); }
fn sigmoid_f32(x: f32) -> f32 { return 1.0 / (1.0 + exp(-x)); }
fn quick_gelu_f32(x: f32) -> f32 { return x * sigmoid_f32(1.702 * x); }
fn relu_f32(x: f32) -> f32 { return max(x, 0.0); }
`;

/**
 * WGSL `act_by_code(code, x)`: the activation chosen at run time by its index in ACTIVATIONS (after
 * ACTIVATION_WGSL). For kernels whose compile time dominates (the matmuls on LLVM drivers), one
 * pipeline for every activation beats one per activation: the branch is uniform and runs once per
 * output.
 */
export const ACTIVATION_BY_CODE_WGSL = /* wgsl */ `
fn act_by_code(code: u32, x: f32) -> f32 {
  switch code {
${ACTIVATIONS.map((a, i) => `    case ${i}u: { return ${applyActivation(a, 'x')}; }`).join('\n')}
    default: { return x; }
  }
}
`;

/** The code of `act` for act_by_code. */
export function activationCode(act: Activation): number {
  return ACTIVATIONS.indexOf(act);
}

/** WGSL expression applying `act` to the f32 expression `x`. */
export function applyActivation(act: Activation, x: string): string {
  switch (act) {
    case 'none':
      return x;
    case 'gelu':
      return `gelu_f32(${x})`;
    case 'quick_gelu':
      return `quick_gelu_f32(${x})`;
    case 'relu':
      return `relu_f32(${x})`;
    case 'sigmoid':
      return `sigmoid_f32(${x})`;
  }
}
