from benchmarks.synthetic import main

main()
