//! Packaging (the "pack" stage): turns stored frames and Syphus answers into the files the Otter
//! trainer reads: `{CODE}_instructions.json`, `{CODE}_train.json` and the images parquet
//! (`{CODE}.parquet` or its parts).
//!
//! - [`answers`]: reading Syphus answer files and splitting their text into question/answer pairs;
//! - [`instructions`]: numbering the pairs into instruction ids and writing the two JSON files;
//! - [`images`]: the images parquet, its pandas metadata, and the split into parts;
//! - [`webdataset`]: tar shards for WebDataset loaders;
//! - [`chat`]: LLaVA and ShareGPT (LLaMA-Factory) conversation files with an `images/` folder;
//! - [`hf`]: Hugging Face `datasets` parquet parts and dataset card.

pub mod answers;
pub mod chat;
pub mod hf;
pub mod images;
pub mod instructions;
pub mod webdataset;

pub use answers::{parse_answers, read_answers, split_pairs, Answer, QaPair};
pub use images::{base64_len, part_names, plan_parts, write_images_parquet};
pub use instructions::{
    build_instructions, instruction_id, write_instructions, Instruction, InstructionsFile, Meta,
    Packed, TrainFile, UnitImages,
};
