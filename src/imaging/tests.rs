use super::*;

fn cfg(w: u32, h: u32, aspect: Aspect) -> ImageConfig {
    ImageConfig {
        width: w,
        height: h,
        aspect,
        ..ImageConfig::default()
    }
}

/// A picture with some structure (gradients), so that encoders have work to do.
fn gradient(w: u32, h: u32) -> RgbFrame {
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            data.extend_from_slice(&[
                (x * 255 / w) as u8,
                (y * 255 / h) as u8,
                ((x ^ y) & 0xff) as u8,
            ]);
        }
    }
    RgbFrame::new(w, h, data)
}

fn solid(w: u32, h: u32, px: [u8; 3]) -> RgbFrame {
    RgbFrame::new(w, h, px.repeat((w * h) as usize))
}

fn pixel(img: &RgbFrame, x: u32, y: u32) -> [u8; 3] {
    let i = ((y * img.width + x) * 3) as usize;
    [img.data[i], img.data[i + 1], img.data[i + 2]]
}

#[test]
fn resize_modes_give_the_right_sizes() {
    let src = gradient(400, 200);
    let size = |a| {
        let out = resize(&src, &cfg(224, 224, a)).unwrap();
        assert_eq!(out.data.len(), (out.width * out.height * 3) as usize);
        (out.width, out.height)
    };
    assert_eq!(size(Aspect::Squash), (224, 224));
    assert_eq!(size(Aspect::Pad), (224, 224));
    assert_eq!(size(Aspect::Crop), (224, 224));
    assert_eq!(size(Aspect::Keep), (224, 112));
    // Upscaling fits too.
    let small = gradient(10, 20);
    let out = resize(&small, &cfg(100, 100, Aspect::Keep)).unwrap();
    assert_eq!((out.width, out.height), (50, 100));
    // Extreme aspect ratios never collapse to zero.
    let strip = gradient(1000, 1);
    let out = resize(&strip, &cfg(64, 64, Aspect::Keep)).unwrap();
    assert_eq!((out.width, out.height), (64, 1));
}

#[test]
fn pad_borders_are_black_and_content_centred() {
    let src = solid(400, 200, [200, 100, 50]);
    for filter in [
        ResizeFilter::Lanczos3,
        ResizeFilter::Bilinear,
        ResizeFilter::Bicubic,
    ] {
        let c = ImageConfig {
            filter,
            ..cfg(224, 224, Aspect::Pad)
        };
        let out = resize(&src, &c).unwrap();
        // Content is 224x112 at rows 56..168.
        assert_eq!(pixel(&out, 0, 0), [0, 0, 0]);
        assert_eq!(pixel(&out, 223, 55), [0, 0, 0]);
        assert_eq!(pixel(&out, 100, 223), [0, 0, 0]);
        assert_eq!(pixel(&out, 112, 56), [200, 100, 50]);
        assert_eq!(pixel(&out, 112, 167), [200, 100, 50]);
        assert_eq!(pixel(&out, 112, 168), [0, 0, 0]);
    }
}

#[test]
fn crop_keeps_the_centre() {
    // Red | green | blue, with green well beyond the centre square (the filter reads a few
    // pixels past the crop box): a square crop sees only green.
    let (w, h) = (300, 100);
    let mut data = Vec::new();
    for _ in 0..h {
        for x in 0..w {
            data.extend_from_slice(match x {
                0..60 => &[255, 0, 0],
                60..240 => &[0, 255, 0],
                _ => &[0, 0, 255],
            });
        }
    }
    let out = resize(&RgbFrame::new(w, h, data), &cfg(50, 50, Aspect::Crop)).unwrap();
    assert_eq!(pixel(&out, 0, 0), [0, 255, 0]);
    assert_eq!(pixel(&out, 49, 49), [0, 255, 0]);
}

#[test]
fn same_size_squash_is_untouched() {
    let src = gradient(224, 224);
    assert_eq!(resize(&src, &cfg(224, 224, Aspect::Squash)).unwrap(), src);
    assert_eq!(resize(&src, &cfg(224, 224, Aspect::Pad)).unwrap(), src);
    assert!(resize(&src, &cfg(0, 224, Aspect::Squash)).is_err());
}

#[test]
fn png_round_trip_and_determinism() {
    let img = gradient(97, 61);
    let c = ImageConfig::default();
    let bytes = encode(&img, &c).unwrap();
    assert_eq!(bytes, encode(&img, &c).unwrap());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a.png");
    std::fs::write(&path, &bytes).unwrap();
    let back = decode_file(&path).unwrap();
    assert_eq!(back, img);
    assert_eq!(pixel_hash(&back), pixel_hash(&img));
}

#[test]
fn jpeg_honours_quality() {
    let img = gradient(256, 256);
    let jpeg = |q| {
        encode(
            &img,
            &ImageConfig {
                format: ImageFormat::Jpeg,
                quality: q,
                ..ImageConfig::default()
            },
        )
        .unwrap()
    };
    let (low, high) = (jpeg(20), jpeg(95));
    assert!(
        low.len() < high.len(),
        "q20 {} bytes, q95 {} bytes",
        low.len(),
        high.len()
    );
    assert_eq!(&high[..2], &[0xFF, 0xD8]);
    let back = decode_bytes(&high, Path::new("mem.jpg")).unwrap();
    assert_eq!((back.width, back.height), (256, 256));
    let bad = ImageConfig {
        format: ImageFormat::Jpeg,
        quality: 0,
        ..ImageConfig::default()
    };
    assert!(encode(&img, &bad).is_err());
}

#[test]
fn pixel_hash_covers_size_and_pixels() {
    let a = solid(4, 2, [1, 2, 3]);
    let b = solid(2, 4, [1, 2, 3]);
    assert_ne!(pixel_hash(&a), pixel_hash(&b));
    assert_eq!(pixel_hash(&a).len(), 64);
    let mut expected = blake3::Hasher::new();
    expected.update(&4u32.to_le_bytes());
    expected.update(&2u32.to_le_bytes());
    expected.update(&a.data);
    assert_eq!(pixel_hash(&a), expected.finalize().to_hex().to_string());
}

#[test]
fn fake_image_is_refused_with_its_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fake.jpg");
    std::fs::write(&path, "not really a jpeg").unwrap();
    let err = decode_file(&path).unwrap_err();
    assert!(err.to_string().contains("fake.jpg"), "{err}");
    let err = decode_file(&dir.path().join("gone.png")).unwrap_err();
    assert!(err.to_string().contains("gone.png"), "{err}");
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A PNG whose header declares `w` x `h` RGB8, followed by an empty IDAT and IEND.
fn png_header_only(w: u32, h: u32) -> Vec<u8> {
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut chunk = |kind: &[u8], data: &[u8]| {
        out.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let mut body = kind.to_vec();
        body.extend_from_slice(data);
        out.extend_from_slice(&body);
        out.extend_from_slice(&crc32(&body).to_be_bytes());
    };
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    chunk(b"IHDR", &ihdr);
    chunk(b"IDAT", &[]);
    chunk(b"IEND", &[]);
    out
}

#[test]
fn decompression_bomb_is_refused() {
    assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bomb.png");
    std::fs::write(&path, png_header_only(100_000, 100_000)).unwrap();
    let err = decode_file(&path).unwrap_err();
    assert!(matches!(err, ImagingError::TooLarge { .. }), "{err:?}");
    assert!(err.to_string().contains("bomb.png"), "{err}");
    // One side over the limit is enough.
    std::fs::write(&path, png_header_only(20_000, 10)).unwrap();
    assert!(matches!(
        decode_file(&path).unwrap_err(),
        ImagingError::TooLarge { .. }
    ));
}

#[test]
fn real_jpegs_decode() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/coco/images");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        eprintln!("skipped: fixture folder {} is missing", dir.display());
        return;
    };
    let mut n = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "jpg") {
            let img = decode_file(&path).unwrap();
            assert!(img.width > 0 && img.height > 0);
            let out = resize(&img, &ImageConfig::default()).unwrap();
            assert_eq!((out.width, out.height), (224, 224));
            n += 1;
        }
    }
    assert!(n > 0);
}
