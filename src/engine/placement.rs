//! Which execution provider ONNX Runtime assigned each graph node to, read from its verbose
//! session log. A compute node falling back to the CPU is the classic cause of a slow GPU run,
//! so the GPU check prints this for every graph.
//!
//! ONNX Runtime reports the placement once per session, while the session is created:
//! `All nodes placed on [P]. Number of nodes: N` when one provider took everything, else per
//! provider ` Node(s) placed on [P]. Number of nodes: N` followed by one `  OpType (name)`
//! message per node.

use std::fmt;

/// Operators that ONNX Runtime keeps on the CPU on purpose (shape arithmetic on small integer
/// tensors): they cost nothing and are not a fallback to worry about.
const SHAPE_OPS: &[&str] = &[
    "Shape",
    "Gather",
    "Unsqueeze",
    "Squeeze",
    "Concat",
    "Reshape",
    "Slice",
    "Cast",
    "ConstantOfShape",
    "Range",
    "Size",
    "Equal",
    "Where",
    "Expand",
    "Mul",
    "Add",
    "Sub",
    "Div",
    "Floor",
    "Ceil",
    "Max",
    "Min",
];

/// The nodes one provider was given.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ProviderNodes {
    pub provider: String,
    pub count: usize,
    /// `OpType (name)` of each node; empty when ONNX Runtime only gave the count (one provider
    /// took the whole graph).
    pub nodes: Vec<String>,
}

/// The placement report of one session.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    pub providers: Vec<ProviderNodes>,
}

impl Placement {
    /// True once ONNX Runtime's report was seen.
    pub fn is_known(&self) -> bool {
        !self.providers.is_empty()
    }

    /// Nodes placed on the CPU provider.
    pub fn cpu(&self) -> Option<&ProviderNodes> {
        self.providers
            .iter()
            .find(|p| p.provider == "CPUExecutionProvider")
    }

    pub fn cpu_count(&self) -> usize {
        self.cpu().map_or(0, |p| p.count)
    }

    pub fn total(&self) -> usize {
        self.providers.iter().map(|p| p.count).sum()
    }

    /// CPU nodes whose operator is not shape arithmetic (the ones that may cost time), as
    /// `OpType (name)`.
    pub fn cpu_compute_nodes(&self) -> Vec<&str> {
        let Some(cpu) = self.cpu() else {
            return Vec::new();
        };
        // A graph entirely on the CPU (the CPU provider asked for) has no fallback.
        if self.providers.len() == 1 {
            return Vec::new();
        }
        cpu.nodes
            .iter()
            .map(String::as_str)
            .filter(|n| !SHAPE_OPS.contains(&op_type(n)))
            .collect()
    }

    /// Feeds one log message; returns true if it belonged to the placement report.
    pub fn feed(&mut self, message: &str) -> bool {
        let message = message.trim_end();
        if let Some((provider, count)) = parse_header(message) {
            self.providers.push(ProviderNodes {
                provider,
                count,
                nodes: Vec::new(),
            });
            return true;
        }
        // Node lines follow their header and are indented by two spaces or more.
        if let Some(last) = self.providers.last_mut()
            && last.nodes.len() < last.count
            && message.starts_with("  ")
            && !message.trim().is_empty()
        {
            last.nodes.push(message.trim().to_string());
            return true;
        }
        false
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.is_known() {
            return f.write_str("unknown (no placement report in the session log)");
        }
        let parts: Vec<String> = self
            .providers
            .iter()
            .map(|p| format!("{}={}", short_provider(&p.provider), p.count))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// `CUDAExecutionProvider` → `cuda`.
pub fn short_provider(name: &str) -> String {
    name.trim_end_matches("ExecutionProvider")
        .to_ascii_lowercase()
}

/// `Conv (/down/conv)` → `Conv`.
fn op_type(node: &str) -> &str {
    node.split_whitespace().next().unwrap_or("")
}

fn parse_header(message: &str) -> Option<(String, usize)> {
    let rest = message
        .split_once("All nodes placed on [")
        .or_else(|| message.split_once("Node(s) placed on ["))?
        .1;
    let (provider, rest) = rest.split_once(']')?;
    let count = rest.rsplit(':').next()?.trim().parse().ok()?;
    Some((provider.to_string(), count))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(lines: &[&str]) -> Placement {
        let mut p = Placement::default();
        for l in lines {
            p.feed(l);
        }
        p
    }

    #[test]
    fn one_provider_for_everything() {
        let p = parse(&[
            "Node placements",
            "All nodes placed on [CPUExecutionProvider]. Number of nodes: 412",
            "Session successfully initialized.",
        ]);
        assert_eq!(p.to_string(), "cpu=412");
        assert_eq!(p.cpu_count(), 412);
        assert!(p.cpu_compute_nodes().is_empty());
    }

    #[test]
    fn mixed_placement_lists_the_cpu_nodes_and_flags_compute_ones() {
        let p = parse(&[
            "Node placements",
            " Node(s) placed on [CUDAExecutionProvider]. Number of nodes: 2",
            "  Conv (/enc/conv)",
            "  MatMul (/attn/q)",
            " Node(s) placed on [CPUExecutionProvider]. Number of nodes: 3",
            "  Shape (/attn/Shape)",
            "  Gather (/attn/Gather_1)",
            "  GridSample (/warp/GridSample)",
            "Some nodes were not assigned to the preferred execution providers",
            "  unrelated indented message",
        ]);
        assert_eq!(p.to_string(), "cuda=2,cpu=3");
        assert_eq!(p.total(), 5);
        assert_eq!(p.cpu().unwrap().nodes.len(), 3);
        assert_eq!(p.cpu_compute_nodes(), vec!["GridSample (/warp/GridSample)"]);
    }

    #[test]
    fn no_report_is_unknown() {
        let p = parse(&["Session successfully initialized."]);
        assert!(!p.is_known());
        assert!(p.to_string().starts_with("unknown"));
    }
}
