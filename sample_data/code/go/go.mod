module example.org/sprocket/go

go 1.21
