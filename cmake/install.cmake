# `cmake --install build --prefix P` installs what users of fleet need:
#
#   P/bin/fleet-scheduler, P/bin/fleet-worker   the daemons
#   P/bin/fleet-executor                        the worker's task processes
#   P/lib/libfleet_task.so*, libfleet_client.so*  what task libraries and drivers link
#   P/include/fleet/*.h                           the public API
#   P/lib/cmake/fleet/                            find_package(fleet CONFIG): fleet::task, fleet::client
#
# (examples/ installs its own driver and task library beside them.)
#
# Only the two shared libraries are exported. fleet_client links the
# scheduler, worker, common and proto libraries statically and privately, so
# they are inside libfleet_client.so and not part of its link interface; a
# project that links fleet::client needs none of them, nor their headers.
include(CMakePackageConfigHelpers)

set(FLEET_INSTALL_CMAKEDIR ${CMAKE_INSTALL_LIBDIR}/cmake/fleet)

install(TARGETS fleet_task fleet_client
  EXPORT fleetTargets
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(TARGETS fleet-scheduler fleet-worker fleet-executor fleet
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

install(DIRECTORY ${PROJECT_SOURCE_DIR}/client/include/fleet
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  FILES_MATCHING PATTERN "*.h")

install(EXPORT fleetTargets
  NAMESPACE fleet::
  FILE fleetTargets.cmake
  DESTINATION ${FLEET_INSTALL_CMAKEDIR})

configure_package_config_file(
  ${PROJECT_SOURCE_DIR}/cmake/fleetConfig.cmake.in
  ${PROJECT_BINARY_DIR}/cmake/fleetConfig.cmake
  INSTALL_DESTINATION ${FLEET_INSTALL_CMAKEDIR})
# Before 1.0 a minor version may change the API (and the SONAME stays 0), so
# only the same minor version is compatible.
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/cmake/fleetConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMinorVersion)
install(FILES
  ${PROJECT_BINARY_DIR}/cmake/fleetConfig.cmake
  ${PROJECT_BINARY_DIR}/cmake/fleetConfigVersion.cmake
  DESTINATION ${FLEET_INSTALL_CMAKEDIR})
