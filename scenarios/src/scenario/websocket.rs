//! websocket: chat streamed over WebSocket connections held for the whole run, one request a
//! second on each, answers of 5 to 10 s overlapping on a connection; connect time, TTFT and ITL
//! as a client of `GET /v1/realtime/chat` sees them.

use std::time::Duration;

use super::{Scenario, Transport, Upstream};
use crate::load::{Load, Stages};
use crate::websocket::DEFAULT_PATH;
use crate::workload::{Mix, PromptMix, RequestKind, Shape};

pub fn scenario() -> Scenario {
    Scenario {
        // Room for the upstream's longest answers (200 tokens).
        prompts: PromptMix {
            shapes: vec![Shape {
                weight: 1,
                sentences: 2,
                max_tokens: 256,
            }],
            repeat_ratio: 0.0,
            hot_prompts: 0,
        },
        upstream: Upstream::LongStreams,
        transport: Transport::WebSocket { path: DEFAULT_PATH },
        ..Scenario::new(
            "websocket",
            "100 WebSocket connections held for 60 s, a streamed chat request a second on each \
             (answers of 5-10 s): connect time, TTFT, ITL",
            Load::Closed {
                stages: Stages::constant(100, Duration::from_secs(60)),
                think_time: None,
            },
            Mix::only(RequestKind::Stream),
            include_str!("../../slo/websocket.toml"),
        )
    }
}
