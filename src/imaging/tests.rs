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
    let dir = crate::testkit::fixture("coco/images");
    let entries = std::fs::read_dir(&dir).unwrap();
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
    assert_eq!(n, 4, "the four COCO fixture pictures");
}

/// Four solid quadrants: red top-left, green top-right, blue bottom-left, white bottom-right.
fn quadrants(w: u32, h: u32) -> RgbFrame {
    let mut data = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            data.extend_from_slice(match (x < w / 2, y < h / 2) {
                (true, true) => &[255, 0, 0],
                (false, true) => &[0, 255, 0],
                (true, false) => &[0, 0, 255],
                (false, false) => &[255, 255, 255],
            });
        }
    }
    RgbFrame::new(w, h, data)
}

fn jpeg_bytes(img: &RgbFrame) -> Vec<u8> {
    let cfg = ImageConfig {
        format: ImageFormat::Jpeg,
        quality: 95,
        ..ImageConfig::default()
    };
    encode(img, &cfg).unwrap()
}

/// `jpeg` with an EXIF APP1 segment holding only `orientation` (1..=8) after its SOI marker;
/// big-endian TIFF when `motorola`.
fn with_orientation(jpeg: &[u8], orientation: u16, motorola: bool) -> Vec<u8> {
    let u16b = |v: u16| {
        if motorola {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let u32b = |v: u32| {
        if motorola {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        }
    };
    let mut tiff = Vec::new();
    tiff.extend_from_slice(if motorola { b"MM\0*" } else { b"II*\0" });
    tiff.extend_from_slice(&u32b(8)); // IFD0 right after the header
    tiff.extend_from_slice(&u16b(1)); // one entry
    tiff.extend_from_slice(&u16b(0x0112)); // Orientation
    tiff.extend_from_slice(&u16b(3)); // SHORT
    tiff.extend_from_slice(&u32b(1));
    tiff.extend_from_slice(&u16b(orientation));
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&u32b(0)); // no next IFD
    let mut body = b"Exif\0\0".to_vec();
    body.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&jpeg[2..]);
    out
}

/// The colour nearest to `px` among the quadrants' four.
fn quadrant_colour(px: [u8; 3]) -> &'static str {
    let names = [
        ([255, 0, 0], "red"),
        ([0, 255, 0], "green"),
        ([0, 0, 255], "blue"),
        ([255, 255, 255], "white"),
    ];
    let dist = |c: [u8; 3]| -> i32 {
        (0..3)
            .map(|i| (i32::from(c[i]) - i32::from(px[i])).pow(2))
            .sum()
    };
    names.iter().min_by_key(|(c, _)| dist(*c)).unwrap().1
}

/// The colours at the four corners: top-left, top-right, bottom-left, bottom-right.
fn corners(img: &RgbFrame) -> [&'static str; 4] {
    let (w, h) = (img.width, img.height);
    [(4, 4), (w - 5, 4), (4, h - 5), (w - 5, h - 5)].map(|(x, y)| quadrant_colour(pixel(img, x, y)))
}

#[test]
fn exif_orientation_is_applied_to_jpegs() {
    let jpeg = jpeg_bytes(&quadrants(64, 48));
    let plain = decode_bytes(&jpeg, Path::new("plain.jpg")).unwrap();
    assert_eq!((plain.width, plain.height), (64, 48));
    assert_eq!(corners(&plain), ["red", "green", "blue", "white"]);
    // (EXIF value, size, corners) for every orientation, little- and big-endian EXIF.
    let expect: [(u16, (u32, u32), [&str; 4]); 8] = [
        (1, (64, 48), ["red", "green", "blue", "white"]),
        (2, (64, 48), ["green", "red", "white", "blue"]),
        (3, (64, 48), ["white", "blue", "green", "red"]),
        (4, (64, 48), ["blue", "white", "red", "green"]),
        (5, (48, 64), ["red", "blue", "green", "white"]),
        (6, (48, 64), ["blue", "red", "white", "green"]),
        (7, (48, 64), ["white", "green", "blue", "red"]),
        (8, (48, 64), ["green", "white", "red", "blue"]),
    ];
    for motorola in [false, true] {
        for (value, size, want) in expect {
            let bytes = with_orientation(&jpeg, value, motorola);
            let img = decode_bytes(&bytes, Path::new("o.jpg")).unwrap();
            assert_eq!((img.width, img.height), size, "orientation {value}");
            assert_eq!(
                corners(&img),
                want,
                "orientation {value}, big-endian {motorola}"
            );
        }
    }
    // A damaged EXIF block leaves the picture as stored.
    let mut broken = with_orientation(&jpeg, 6, false);
    broken[12] = b'X'; // the TIFF byte-order mark
    let img = decode_bytes(&broken, Path::new("broken-exif.jpg")).unwrap();
    assert_eq!((img.width, img.height), (64, 48));
}

fn gap(w: u32, h: u32, aspect: Aspect, reducing_gap: f64) -> ImageConfig {
    ImageConfig {
        reducing_gap,
        ..cfg(w, h, aspect)
    }
}

#[test]
fn draft_divisor_keeps_the_reducing_gap() {
    use Aspect::*;
    // (source, target, aspect, gap, divisor)
    let cases = [
        // 640x480 to 224x224: 2.86x and 2.14x smaller; half size is 1.43x and 1.07x the target.
        ((640, 480), (224, 224), Squash, 2.0, 1),
        ((640, 480), (224, 224), Squash, 1.0, 2),
        ((640, 480), (224, 224), Squash, 0.0, 1),
        // ScanNet's 1296x968: half size (648x484) is still more than twice 224.
        ((1296, 968), (224, 224), Squash, 2.0, 2),
        ((1296, 968), (224, 224), Squash, 1.0, 4),
        // Very large sources stop at 1/8.
        ((16000, 16000), (32, 32), Squash, 1.0, 8),
        // Fit inside (keep, pad): 1920x480 into 224x224 shrinks 8.57x both ways.
        ((1920, 480), (224, 224), Keep, 2.0, 4),
        ((1920, 480), (224, 224), Pad, 2.0, 4),
        // Fill then crop: the short side decides (480 / 224 = 2.14x).
        ((1920, 480), (224, 224), Crop, 1.0, 2),
        ((1920, 480), (224, 224), Crop, 2.0, 1),
        // Squash: the direction shrinking least decides.
        ((1920, 480), (224, 224), Squash, 2.0, 1),
        // Upscaling never reduces.
        ((100, 100), (224, 224), Squash, 1.0, 1),
    ];
    for ((sw, sh), (w, h), aspect, g, want) in cases {
        let got = draft_divisor(sw, sh, &gap(w, h, aspect, g));
        assert_eq!(got, want, "{sw}x{sh} to {w}x{h} {aspect:?} at gap {g}");
    }
    assert!(valid_reducing_gap(0.0) && valid_reducing_gap(1.0) && valid_reducing_gap(3.5));
    assert!(!valid_reducing_gap(0.5) && !valid_reducing_gap(f64::NAN) && !valid_reducing_gap(-1.0));
    assert!(!valid_reducing_gap(f64::INFINITY));
}

#[test]
fn jpegs_are_decoded_reduced_when_the_gap_allows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.jpg");
    std::fs::write(&path, jpeg_bytes(&gradient(1280, 960))).unwrap();
    let full = decode_file(&path).unwrap();
    assert_eq!((full.width, full.height), (1280, 960));
    let at = |g: f64| decode_file_for(&path, &gap(224, 224, Aspect::Squash, g)).unwrap();
    assert_eq!((at(0.0).width, at(0.0).height), (1280, 960));
    assert_eq!((at(2.0).width, at(2.0).height), (640, 480));
    assert_eq!((at(1.0).width, at(1.0).height), (320, 240));
    // Odd sizes round up, as libjpeg-turbo scales them.
    let odd = dir.path().join("odd.jpg");
    std::fs::write(&odd, jpeg_bytes(&gradient(1001, 757))).unwrap();
    let img = decode_file_for(&odd, &gap(100, 100, Aspect::Squash, 1.0)).unwrap();
    assert_eq!((img.width, img.height), (251, 190));
    // The upright size decides: stored 960x1280 turned to 1280x960 by EXIF orientation 6,
    // for a 448x224 target: 1280 / 448 = 2.86, 960 / 224 = 4.29, so half size at gap 1.
    let turned = dir.path().join("turned.jpg");
    let stored = jpeg_bytes(&gradient(960, 1280));
    std::fs::write(&turned, with_orientation(&stored, 6, false)).unwrap();
    let img = decode_file_for(&turned, &gap(448, 224, Aspect::Squash, 1.0)).unwrap();
    assert_eq!((img.width, img.height), (640, 480));
    // PNG is never reduced.
    let png = dir.path().join("big.png");
    std::fs::write(
        &png,
        encode(&gradient(1280, 960), &ImageConfig::default()).unwrap(),
    )
    .unwrap();
    let img = decode_file_for(&png, &gap(224, 224, Aspect::Squash, 1.0)).unwrap();
    assert_eq!((img.width, img.height), (1280, 960));
}

#[test]
fn reduced_decoding_stays_close_to_a_full_decode() {
    // Real photographs (ScanNet's 1296x968 colour frames) and a generated picture.
    let dir = crate::testkit::fixture("scannet/scene0000_00/color");
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert_eq!(files.len(), 3, "the ScanNet fixture frames");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("gradient.jpg");
    std::fs::write(&path, jpeg_bytes(&gradient(1296, 968))).unwrap();
    files.push(path);
    for path in files {
        let full = resize(&decode_file(&path).unwrap(), &ImageConfig::default()).unwrap();
        let cfg = ImageConfig::default();
        assert_eq!(cfg.reducing_gap, 2.0);
        let drafted = decode_file_for(&path, &cfg).unwrap();
        assert!(
            drafted.width < 1296 / 2 + 1,
            "{}: not reduced",
            path.display()
        );
        let reduced = resize(&drafted, &cfg).unwrap();
        let db = crate::testkit::psnr(&full, &reduced);
        assert!(
            db > 45.0,
            "{}: {db:.1} dB against a full decode",
            path.display()
        );
    }
}

#[test]
fn png_compression_changes_bytes_not_pixels() {
    let img = gradient(224, 224);
    let bytes = |c: PngCompression| {
        let cfg = ImageConfig {
            png_compression: c,
            ..ImageConfig::default()
        };
        encode(&img, &cfg).unwrap()
    };
    let (default, fast, best) = (
        bytes(PngCompression::Default),
        bytes(PngCompression::Fast),
        bytes(PngCompression::Best),
    );
    assert_ne!(default, fast);
    for b in [&default, &fast, &best] {
        let back = decode_bytes(b, Path::new("f.png")).unwrap();
        assert_eq!(back.data, img.data);
    }
    assert_eq!(
        fast,
        bytes(PngCompression::Fast),
        "fast compression is deterministic"
    );
    assert!(best.len() <= default.len());
}
