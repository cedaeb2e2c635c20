module hipnet.dev

go 1.26
