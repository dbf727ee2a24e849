//! The `price` processor: cost per span as an exact decimal from a price table shipped as a
//! data file (`prices.toml`, embedded in the binary) and extended or overridden in config.
//! Unknown models leave the cost empty and set `view.flags.unknown_price`.

mod config;
#[allow(clippy::module_inception, reason = "the component folder layout names the file after it")]
mod price;
#[cfg(test)]
mod tests;

pub use config::{
    BUILTIN_PRICES, ModelPrice, PriceTable, PriceValue, RawModelPrice, RawPriceConfig,
    canonical_provider,
};
pub use price::{
    PriceCounters, PriceOutcome, PriceProcessor, UnknownModel, cost_of, find_price, price_view,
    recompute_cost, unknown_models,
};
