//! Adam and AdamW over a var store's trainable tensors, with state that checkpoints can save.
//!
//! tch's built-in optimizers keep their moments inside libtorch where they cannot be saved,
//! so a resumed run would restart Adam from zero. This implementation keeps the first and
//! second moments as named tensors.

use std::collections::HashMap;

use tch::nn::VarStore;
use tch::Tensor;

/// Prefixes of the moment tensors in a checkpoint file.
pub const FIRST_MOMENT_PREFIX: &str = "optimizer.m.";
pub const SECOND_MOMENT_PREFIX: &str = "optimizer.v.";

/// Adam settings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    /// AdamW: decay the weights directly instead of adding the decay to the gradient.
    pub decoupled: bool,
}

/// One trainable tensor with its moments.
#[derive(Debug)]
struct Parameter {
    name: String,
    value: Tensor,
    first: Tensor,
    second: Tensor,
}

/// Adam (or AdamW) with bias correction.
#[derive(Debug)]
pub struct Adam {
    config: AdamConfig,
    parameters: Vec<Parameter>,
    step: i64,
}

impl Adam {
    /// Prepares zero moments for every trainable variable of `vs`.
    pub fn new(vs: &VarStore, config: AdamConfig) -> Adam {
        let mut named: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, tensor)| tensor.requires_grad())
            .collect();
        named.sort_by(|a, b| a.0.cmp(&b.0));
        let parameters = named
            .into_iter()
            .map(|(name, value)| Parameter {
                first: value.zeros_like().detach(),
                second: value.zeros_like().detach(),
                name,
                value,
            })
            .collect();
        Adam {
            config,
            parameters,
            step: 0,
        }
    }

    /// Returns the number of updates made so far.
    pub fn step_count(&self) -> i64 {
        self.step
    }

    /// Clears the gradients of all parameters.
    pub fn zero_grad(&mut self) {
        for parameter in &mut self.parameters {
            let mut grad = parameter.value.grad();
            if grad.defined() {
                let _ = grad.detach_().zero_();
            }
        }
    }

    /// Updates every parameter that has a gradient with learning rate `lr`.
    pub fn step(&mut self, lr: f64) {
        self.step += 1;
        let AdamConfig {
            beta1,
            beta2,
            eps,
            weight_decay,
            decoupled,
        } = self.config;
        let correction1 = 1.0 - beta1.powi(self.step as i32);
        let correction2 = 1.0 - beta2.powi(self.step as i32);
        tch::no_grad(|| {
            for parameter in &mut self.parameters {
                let mut grad = parameter.value.grad();
                if !grad.defined() {
                    continue;
                }
                // Biases and batch-norm scales (1-D tensors) are not decayed.
                let decays = weight_decay > 0.0 && parameter.value.dim() > 1;
                if decays && decoupled {
                    let _ = parameter.value.g_mul_scalar_(1.0 - lr * weight_decay);
                } else if decays {
                    grad += &parameter.value * weight_decay;
                }
                let _ = parameter.first.g_mul_scalar_(beta1);
                let _ = parameter.first.g_add_(&(&grad * (1.0 - beta1)));
                let _ = parameter.second.g_mul_scalar_(beta2);
                let _ = parameter.second.g_add_(&(&grad * &grad * (1.0 - beta2)));
                let denominator = (&parameter.second / correction2).sqrt() + eps;
                let update = &parameter.first / denominator * (lr / correction1);
                let _ = parameter.value.g_sub_(&update);
            }
        });
    }

    /// Returns the moments as named tensors for a checkpoint.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut named = Vec::with_capacity(self.parameters.len() * 2);
        for parameter in &self.parameters {
            named.push((
                format!("{FIRST_MOMENT_PREFIX}{}", parameter.name),
                parameter.first.shallow_clone(),
            ));
            named.push((
                format!("{SECOND_MOMENT_PREFIX}{}", parameter.name),
                parameter.second.shallow_clone(),
            ));
        }
        named
    }

    /// Restores the moments from a checkpoint's tensors and the step count from its state.
    ///
    /// # Errors
    ///
    /// The name of the first moment tensor that is missing or has another shape.
    pub fn load_state(
        &mut self,
        tensors: &HashMap<String, Tensor>,
        step: i64,
    ) -> Result<(), String> {
        for parameter in &mut self.parameters {
            for (prefix, target) in [
                (FIRST_MOMENT_PREFIX, &mut parameter.first),
                (SECOND_MOMENT_PREFIX, &mut parameter.second),
            ] {
                let name = format!("{prefix}{}", parameter.name);
                match tensors.get(&name) {
                    Some(value) if value.size() == target.size() => {
                        tch::no_grad(|| target.copy_(value));
                    }
                    Some(value) => {
                        return Err(format!(
                            "\"{name}\" has shape {:?}, expected {:?}",
                            value.size(),
                            target.size()
                        ))
                    }
                    None => return Err(format!("\"{name}\" is missing")),
                }
            }
        }
        self.step = step;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{nn, Device, Kind};

    #[test]
    fn adam_first_step_moves_by_lr() {
        // With bias correction, Adam's first update is lr * sign(gradient) (up to eps).
        let vs = VarStore::new(Device::Cpu);
        let weight = vs.root().var("w", &[3], nn::Init::Const(1.0));
        let config = AdamConfig {
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: true,
        };
        let mut adam = Adam::new(&vs, config);
        let loss = (&weight * Tensor::from_slice(&[2.0f32, -3.0, 0.5])).sum(Kind::Float);
        adam.zero_grad();
        loss.backward();
        adam.step(0.1);
        let values = Vec::<f32>::try_from(&weight).unwrap();
        let expected = [0.9f32, 1.1, 0.9];
        for (value, expected) in values.iter().zip(expected) {
            assert!((value - expected).abs() < 1e-5, "{values:?}");
        }
        assert_eq!(adam.step_count(), 1);
    }
}
