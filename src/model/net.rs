//! The network architectures, chosen by name.
//!
//! Both take `[N, 1, 48, 48]` float faces and return `[N, classes]` logits.
//!
//! - `vggface`: the reference network. Two 5x5 convolutions of 64 channels, two 3x3 of 128 and
//!   two 3x3 of 256 ('same' padding, with bias), each followed by ReLU and then batch norm;
//!   after each pair a 2x2 max-pool and dropout 0.5; then dense 128, ReLU, batch norm, dropout
//!   0.6 and a dense layer to the classes. He-normal (truncated) weights and Keras-like batch
//!   norm (momentum 0.01 in torch terms, eps 1e-3). About 494 million multiply-adds per face.
//! - `moodnet` (the default): four stages of two 3x3 conv-BN-ReLU layers with widths
//!   w, 2w, 4w, 8w and a 2x2 max-pool between stages. Global average pooling, dropout 0.3 and
//!   one linear layer follow. It uses torch's default initialisation and batch-norm settings.
//!   `moodnet` is w = 16, about 30 million multiply-adds per face. `moodnet-wN` selects
//!   another base width N. The shipped seven-class model is `moodnet-w24` (about 67 million
//!   multiply-adds), which measured 68.7% accuracy on FER-2013 PublicTest with `moodscope
//!   eval`; `models/README.md` keeps the current numbers.

use std::fmt;
use std::str::FromStr;

use tch::nn::{self, ModuleT};
use tch::{Kind, Tensor};

/// Side of the square grayscale input, in pixels.
pub const INPUT_SIZE: u32 = 48;

/// Base width of `moodnet`, chosen from training-time measurements in the model card.
pub const MOODNET_WIDTH: i64 = 16;

/// A network architecture, by the name stored in model descriptions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// The reference VGG-style network.
    VggFace,
    /// Our network with the given base width.
    MoodNet { width: i64 },
}

impl Architecture {
    /// Names accepted by [`Architecture::from_str`], for messages.
    pub const NAMES: &'static str = "\"vggface\", \"moodnet\", \"moodnet-wN\" (N from 4 to 256)";

    /// Returns the variable-name prefix of the final layer, whose first dimension is the class
    /// count.
    pub fn head_name(self) -> &'static str {
        match self {
            Architecture::VggFace => "fc2",
            Architecture::MoodNet { .. } => "fc",
        }
    }
}

impl FromStr for Architecture {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let lower = text.trim().to_ascii_lowercase();
        match lower.as_str() {
            "vggface" => return Ok(Architecture::VggFace),
            "moodnet" => {
                return Ok(Architecture::MoodNet {
                    width: MOODNET_WIDTH,
                })
            }
            _ => {}
        }
        let width = lower
            .strip_prefix("moodnet-w")
            .and_then(|w| w.parse::<i64>().ok());
        match width {
            Some(width) if (4..=256).contains(&width) => Ok(Architecture::MoodNet { width }),
            _ => Err(format!(
                "unknown architecture \"{text}\": expected one of {}",
                Architecture::NAMES
            )),
        }
    }
}

impl fmt::Display for Architecture {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Architecture::VggFace => f.write_str("vggface"),
            Architecture::MoodNet { width } if *width == MOODNET_WIDTH => f.write_str("moodnet"),
            Architecture::MoodNet { width } => write!(f, "moodnet-w{width}"),
        }
    }
}

/// Epsilon of moodnet's batch norms (torch's default), also used when folding them.
const MOODNET_BATCH_NORM_EPS: f64 = 1e-5;

/// A built network whose variables live in a [`nn::VarStore`].
#[derive(Debug)]
pub enum Network {
    VggFace(VggFace),
    MoodNet(MoodNet),
    /// A moodnet prepared for inference only; see [`Network::into_inference`].
    FoldedMoodNet(FoldedMoodNet),
}

impl Network {
    /// Creates the variables of `architecture` under `root` with `classes` outputs.
    pub fn new(root: &nn::Path, architecture: Architecture, classes: i64) -> Network {
        match architecture {
            Architecture::VggFace => Network::VggFace(VggFace::new(root, classes)),
            Architecture::MoodNet { width } => Network::MoodNet(MoodNet::new(root, width, classes)),
        }
    }

    /// Returns a copy prepared for inference with weights of element type `kind`: moodnet with
    /// its batch norms folded into the convolutions before them, which gives the same outputs
    /// with a third fewer passes over the activations. Returns `None` for vggface, which
    /// normalises after the ReLU, and for a network that is already folded.
    ///
    /// The folded network ignores `train` in `forward_t`.
    pub fn folded(&self, kind: Kind) -> Option<Network> {
        match self {
            Network::MoodNet(net) => Some(Network::FoldedMoodNet(net.folded(kind))),
            _ => None,
        }
    }
}

impl ModuleT for Network {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        match self {
            Network::VggFace(net) => net.forward_t(xs, train),
            Network::MoodNet(net) => net.forward_t(xs, train),
            Network::FoldedMoodNet(net) => net.forward_t(xs, train),
        }
    }
}

/// Counts the trainable parameters and all stored values (adding batch-norm running
/// statistics, as Keras's "total params" does) of a var store.
pub fn parameter_counts(vs: &nn::VarStore) -> (i64, i64) {
    let trainable = vs
        .trainable_variables()
        .iter()
        .map(Tensor::numel)
        .sum::<usize>();
    let total = vs.variables().values().map(Tensor::numel).sum::<usize>();
    (trainable as i64, total as i64)
}

/// The reference network; see the module documentation.
#[derive(Debug)]
pub struct VggFace {
    convs: Vec<(nn::Conv2D, nn::BatchNorm)>,
    fc1: nn::Linear,
    bn7: nn::BatchNorm,
    fc2: nn::Linear,
}

/// Keras's batch-norm defaults (momentum 0.99 of the old value, eps 1e-3) in torch terms.
fn keras_batch_norm(path: nn::Path, channels: i64) -> nn::BatchNorm {
    let config = nn::BatchNormConfig {
        momentum: 0.01,
        eps: 1e-3,
        ws_init: nn::Init::Const(1.0),
        ..Default::default()
    };
    nn::batch_norm2d(path, channels, config)
}

impl VggFace {
    fn new(root: &nn::Path, classes: i64) -> VggFace {
        let layers = [
            (1, 64, 5),
            (64, 64, 5),
            (64, 128, 3),
            (128, 128, 3),
            (128, 256, 3),
        ];
        let layers = layers.into_iter().chain([(256, 256, 3)]);
        let convs = layers
            .enumerate()
            .map(|(i, (input, output, kernel))| {
                let config = nn::ConvConfig {
                    padding: kernel / 2,
                    ..Default::default()
                };
                let conv = nn::conv2d(
                    root / format!("conv{}", i + 1),
                    input,
                    output,
                    kernel,
                    config,
                );
                (
                    conv,
                    keras_batch_norm(root / format!("bn{}", i + 1), output),
                )
            })
            .collect();
        let zero_bias = nn::LinearConfig {
            bs_init: Some(nn::Init::Const(0.0)),
            ..Default::default()
        };
        let flat = 256 * 6 * 6;
        let fc1 = nn::linear(root / "fc1", flat, 128, zero_bias);
        let config = nn::BatchNormConfig {
            momentum: 0.01,
            eps: 1e-3,
            ws_init: nn::Init::Const(1.0),
            ..Default::default()
        };
        let bn7 = nn::batch_norm1d(root / "bn7", 128, config);
        let fc2 = nn::linear(root / "fc2", 128, classes, zero_bias);
        VggFace {
            convs,
            fc1,
            bn7,
            fc2,
        }
    }
}

impl ModuleT for VggFace {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut xs = xs.shallow_clone();
        for (index, (conv, bn)) in self.convs.iter().enumerate() {
            xs = xs.apply(conv).relu().apply_t(bn, train);
            if index % 2 == 1 {
                xs = xs.max_pool2d_default(2).dropout(0.5, train);
            }
        }
        xs.flatten(1, -1)
            .apply(&self.fc1)
            .relu()
            .apply_t(&self.bn7, train)
            .dropout(0.6, train)
            .apply(&self.fc2)
    }
}

/// Replaces every convolution and dense weight of a var store with He-normal values: a normal
/// distribution truncated at two standard deviations, scaled so that the truncated values have
/// standard deviation sqrt(2 / fan_in), as Keras's `he_normal` does.
pub fn init_he_normal(vs: &nn::VarStore) {
    // Standard deviation of a unit normal truncated to [-2, 2].
    const TRUNCATED_STD: f64 = 0.879_625_661_034_239_8;
    tch::no_grad(|| {
        for (name, mut weight) in vs.variables() {
            let size = weight.size();
            if !name.ends_with(".weight") || size.len() < 2 {
                continue;
            }
            let fan_in: i64 = size[1..].iter().product();
            let std = (2.0 / fan_in as f64).sqrt() / TRUNCATED_STD;
            let mut values = Tensor::randn(&size, (Kind::Float, weight.device()));
            // Redraw the values outside two standard deviations until none are left.
            for _ in 0..100 {
                let outside = values.abs().gt(2.0);
                if outside.sum(Kind::Int64).int64_value(&[]) == 0 {
                    break;
                }
                let redraw = Tensor::randn(&size, (Kind::Float, weight.device()));
                values = values.where_self(&outside.logical_not(), &redraw);
            }
            weight.copy_(&(values.clamp(-2.0, 2.0) * std));
        }
    });
}

/// Our network; see the module documentation.
#[derive(Debug)]
pub struct MoodNet {
    convs: Vec<(nn::Conv2D, nn::BatchNorm)>,
    fc: nn::Linear,
}

impl MoodNet {
    fn new(root: &nn::Path, width: i64, classes: i64) -> MoodNet {
        let widths = [width, width * 2, width * 4, width * 8];
        let mut convs = Vec::new();
        let mut input = 1;
        for (stage, &output) in widths.iter().enumerate() {
            for layer in 1..=2 {
                let prefix = root / format!("stage{}", stage + 1);
                let config = nn::ConvConfig {
                    padding: 1,
                    bias: false,
                    ..Default::default()
                };
                let conv = nn::conv2d(&prefix / format!("conv{layer}"), input, output, 3, config);
                let bn_config = nn::BatchNormConfig {
                    ws_init: nn::Init::Const(1.0),
                    eps: MOODNET_BATCH_NORM_EPS,
                    ..Default::default()
                };
                let bn = nn::batch_norm2d(&prefix / format!("bn{layer}"), output, bn_config);
                convs.push((conv, bn));
                input = output;
            }
        }
        let fc = nn::linear(root / "fc", input, classes, Default::default());
        MoodNet { convs, fc }
    }
}

impl MoodNet {
    /// Folds each batch norm's running statistics and affine values into the convolution
    /// before it: `bn(conv(x)) = conv'(x) + b'` with the weights scaled per output channel by
    /// `gamma / sqrt(var + eps)` and `b' = beta - mean * gamma / sqrt(var + eps)`.
    fn folded(&self, kind: Kind) -> FoldedMoodNet {
        tch::no_grad(|| {
            let convs = self
                .convs
                .iter()
                .map(|(conv, bn)| {
                    let gamma = bn
                        .ws
                        .as_ref()
                        .map_or_else(|| bn.running_var.ones_like(), Tensor::shallow_clone);
                    let beta = bn
                        .bs
                        .as_ref()
                        .map_or_else(|| bn.running_var.zeros_like(), Tensor::shallow_clone);
                    let scale = gamma / (&bn.running_var + MOODNET_BATCH_NORM_EPS).sqrt();
                    let weight =
                        channels_last(&(&conv.ws * scale.view([-1, 1, 1, 1])).to_kind(kind));
                    let bias = (beta - &bn.running_mean * &scale).to_kind(kind);
                    (weight, bias)
                })
                .collect();
            FoldedMoodNet {
                convs,
                fc_weight: self.fc.ws.to_kind(kind).copy(),
                fc_bias: self.fc.bs.as_ref().map(|bias| bias.to_kind(kind).copy()),
            }
        })
    }

    /// Runs the layers after the convolutions: global average pooling, dropout and the head.
    fn head(&self, xs: Tensor, train: bool) -> Tensor {
        xs.adaptive_avg_pool2d([1, 1])
            .flatten(1, -1)
            .dropout(0.3, train)
            .apply(&self.fc)
    }
}

/// Returns whether a 2x2 max-pool follows moodnet's convolution number `index` (0-based) of `count`:
/// after each stage's second convolution but the last.
fn pools_after(index: usize, count: usize) -> bool {
    index % 2 == 1 && index + 1 != count
}

impl ModuleT for MoodNet {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut xs = xs.shallow_clone();
        for (index, (conv, bn)) in self.convs.iter().enumerate() {
            xs = xs.apply(conv).apply_t(bn, train).relu();
            if pools_after(index, self.convs.len()) {
                xs = xs.max_pool2d_default(2);
            }
        }
        self.head(xs, train)
    }
}

/// Returns a copy of a `[N, C, H, W]` tensor with the channels innermost in memory (NHWC).
fn channels_last(xs: &Tensor) -> Tensor {
    xs.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2])
}

/// Moodnet with its batch norms folded into its convolutions, for inference only.
#[derive(Debug)]
pub struct FoldedMoodNet {
    /// Weights and biases of each convolution with its batch norm folded in.
    convs: Vec<(Tensor, Tensor)>,
    fc_weight: Tensor,
    fc_bias: Option<Tensor>,
}

impl ModuleT for FoldedMoodNet {
    fn forward_t(&self, xs: &Tensor, _train: bool) -> Tensor {
        let mut xs = channels_last(xs);
        for (index, (weight, bias)) in self.convs.iter().enumerate() {
            xs = xs
                .conv2d(weight, Some(bias), [1, 1], [1, 1], [1, 1], 1)
                .relu_();
            if pools_after(index, self.convs.len()) {
                xs = xs.max_pool2d_default(2);
            }
        }
        xs.adaptive_avg_pool2d([1, 1])
            .flatten(1, -1)
            .linear(&self.fc_weight, self.fc_bias.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn architecture_names_round_trip() {
        for name in ["vggface", "moodnet", "moodnet-w24"] {
            let architecture: Architecture = name.parse().unwrap();
            assert_eq!(architecture.to_string(), name);
        }
        assert!("resnet".parse::<Architecture>().is_err());
        assert!("moodnet-w0".parse::<Architecture>().is_err());
    }

    #[test]
    fn networks_output_one_logit_per_class() {
        for architecture in [Architecture::VggFace, Architecture::MoodNet { width: 8 }] {
            let vs = nn::VarStore::new(tch::Device::Cpu);
            let net = Network::new(&vs.root(), architecture, 3);
            let xs = Tensor::zeros([2, 1, 48, 48], (Kind::Float, tch::Device::Cpu));
            assert_eq!(
                net.forward_t(&xs, false).size(),
                vec![2, 3],
                "{architecture}"
            );
        }
    }

    #[test]
    fn folded_moodnet_matches_original() {
        tch::manual_seed(3);
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let net = Network::new(&vs.root(), Architecture::MoodNet { width: 8 }, 7);
        // Give every batch norm statistics and affine values far from the defaults.
        tch::no_grad(|| {
            for (name, mut value) in vs.variables() {
                if name.contains(".bn") {
                    let noise = value.rand_like() * 0.8 + 0.6;
                    let shifted = if name.ends_with("mean") || name.ends_with("bias") {
                        noise - 1.0
                    } else {
                        noise
                    };
                    value.copy_(&shifted);
                }
            }
        });
        let xs = Tensor::rand([4, 1, 48, 48], (Kind::Float, tch::Device::Cpu));
        let expected = net.forward_t(&xs, false);
        let folded = net.folded(Kind::Float).unwrap();
        let actual = folded.forward_t(&xs, false);
        let largest = (actual - &expected).abs().max().double_value(&[]);
        let scale = expected.abs().max().double_value(&[]);
        assert!(
            largest < 1e-4 * scale.max(1.0),
            "difference {largest}, scale {scale}"
        );
    }

    #[test]
    fn he_normal_has_expected_spread() {
        let vs = nn::VarStore::new(tch::Device::Cpu);
        let _net = Network::new(&vs.root(), Architecture::VggFace, 7);
        tch::manual_seed(1);
        init_he_normal(&vs);
        let weight = &vs.variables()["conv6.weight"];
        let expected = (2.0 / (256.0 * 9.0_f64)).sqrt();
        let std = weight.std(true).double_value(&[]);
        assert!(
            (std - expected).abs() < 0.02 * expected,
            "std {std}, expected {expected}"
        );
        let max = weight.abs().max().double_value(&[]);
        assert!(max <= 2.0 * expected / 0.8796 + 1e-6, "max {max}");
    }
}
